"""Drives fake COS with the official COS XML SDK (cos-python-sdk-v5), unmodified.

Usage: cos_sdk.py PHASE --endpoint HOST:PORT --secret-id ID --secret-key KEY [--url URL]

Phases print one JSON object on stdout:
  upload   put_object, head_object, ranged get_object (and a presigned GET)
  refused  put_object with a wrong SecretKey and with an unknown SecretId
  expired  get_object after the server clock moved past the signature's key time
  put-url  requests.put to a presigned PUT URL made by the server (--url)
"""

import argparse
import hashlib
import json
import sys

import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

BUCKET = "firmware-1250000000"
KEY = "fw.bin"


def image():
    return bytes((i * 31) % 251 for i in range(70000))


def client(args, secret_id=None, secret_key=None):
    config = CosConfig(
        Domain=args.endpoint,
        Scheme="http",
        SecretId=secret_id or args.secret_id,
        SecretKey=secret_key or args.secret_key,
    )
    return CosS3Client(config, retry=0)


def header(headers, name):
    """A header of the SDK's plain dict, by any case (fake COS spells ETag as Etag)."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def body(response):
    return response["Body"].get_raw_stream().read()


def upload(args):
    data = image()
    cos = client(args)
    put = cos.put_object(Bucket=BUCKET, Key=KEY, Body=data, EnableMD5=True)
    head = cos.head_object(Bucket=BUCKET, Key=KEY)
    ranges = {}
    for spec in ["bytes=0-99", "bytes=65536-69999", "bytes=-10", "bytes=69990-"]:
        got = cos.get_object(Bucket=BUCKET, Key=KEY, Range=spec)
        ranges[spec] = {
            "content_range": header(got, "Content-Range"),
            "md5": hashlib.md5(body(got)).hexdigest(),
        }
    url = cos.get_presigned_url(Bucket=BUCKET, Key=KEY, Method="GET", Expired=300)
    presigned = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    return {
        "put_etag": header(put, "ETag"),
        "head_length": int(header(head, "Content-Length")),
        "head_etag": header(head, "ETag"),
        "md5": hashlib.md5(data).hexdigest(),
        "ranges": ranges,
        "expected": {
            "bytes=0-99": hashlib.md5(data[0:100]).hexdigest(),
            "bytes=65536-69999": hashlib.md5(data[65536:70000]).hexdigest(),
            "bytes=-10": hashlib.md5(data[-10:]).hexdigest(),
            "bytes=69990-": hashlib.md5(data[69990:]).hexdigest(),
        },
        "presigned": {"status": presigned.status_code, "ok": presigned.content == data[10:20]},
    }


def refusal(call):
    try:
        call()
    except CosServiceError as error:
        return {"status": error.get_status_code(), "code": error.get_error_code(),
                "message": error.get_error_msg()}
    return {"status": 200, "code": None, "message": None}


def refused(args):
    wrong_key = client(args, secret_key=args.secret_key + "x")
    unknown_id = client(args, secret_id="AKIDunknown")
    return {
        "wrong_key": refusal(lambda: wrong_key.put_object(Bucket=BUCKET, Key="evil.bin", Body=b"x")),
        "unknown_id": refusal(lambda: unknown_id.put_object(Bucket=BUCKET, Key="evil.bin", Body=b"x")),
    }


def expired(args):
    cos = client(args)
    return {"get": refusal(lambda: body(cos.get_object(Bucket=BUCKET, Key=KEY)))}


def put_url(args):
    put = requests.put(args.url, data=b"uploaded through a presigned URL", timeout=10)
    return {"status": put.status_code, "etag": put.headers.get("ETag")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["upload", "refused", "expired", "put-url"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--secret-id", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--url")
    args = parser.parse_args()
    phases = {"upload": upload, "refused": refused, "expired": expired, "put-url": put_url}
    json.dump(phases[args.phase](args), sys.stdout)


if __name__ == "__main__":
    main()
