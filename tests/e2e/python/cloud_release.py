"""A release pipeline written on the official Tencent Cloud SDK for Python, as a team's backend
would run it against the real Hub: upload an image through COS, push it by the console's three
methods, follow the devices until each is done, read the statistics. Prints a JSON summary of
what the API answered; exits non-zero on the first unexpected answer."""

import argparse
import hashlib
import json
import sys
import time

import requests
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iotcloud.v20210408 import iotcloud_client, models

PRODUCT = "E69UADXUYY"
LIGHTS = {"light1": "0.1", "light2": "0.1", "light3": "0.2", "light4": "0.5"}


def client(endpoint, secret_id, secret_key):
    profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="http"))
    cred = credential.Credential(secret_id, secret_key)
    return iotcloud_client.IotcloudClient(cred, "ap-guangzhou", profile)


def req(cls, **fields):
    r = cls()
    r.from_json_string(json.dumps(fields))
    return r


def until(what, check, timeout=60.0):
    """Calls check until it answers something true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


def error_code(call):
    try:
        call()
    except TencentCloudSDKException as e:
        return e.get_code()
    sys.exit("the call was expected to fail")


def upload(api, version, image, md5=None):
    url = api.GetCOSURL(req(models.GetCOSURLRequest, ProductId=PRODUCT,
                            FirmwareVersion=version, FileSize=len(image))).Url
    put = requests.put(url, data=image, timeout=30)
    if put.status_code != 200:
        sys.exit(f"PUT {url}: {put.status_code} {put.text}")
    return api.UploadFirmware(req(models.UploadFirmwareRequest, ProductId=PRODUCT,
                                  FirmwareVersion=version,
                                  Md5sum=md5 or hashlib.md5(image).hexdigest(),
                                  FileSize=len(image), FirmwareName=f"light {version}"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--secret-id", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--image", required=True)
    args = p.parse_args()
    api = client(args.endpoint, args.secret_id, args.secret_key)
    image = open(args.image, "rb").read()
    summary = {}

    upload(api, "1.0", image)
    summary["md5_mismatch"] = error_code(lambda: upload(api, "1.1", image, md5="0" * 32))
    summary["again"] = error_code(lambda: upload(api, "1.0", image))
    fw = api.DescribeFirmware(req(models.DescribeFirmwareRequest, ProductId=PRODUCT,
                                  FirmwareVersion="1.0"))
    summary["firmware"] = {"md5": fw.Md5sum, "name": fw.Name}

    def fleet_ready():
        listed = api.DescribeDevices(req(models.DescribeDevicesRequest, ProductId=PRODUCT,
                                         Offset=0, Limit=10))
        seen = {d.DeviceName: (d.Online, d.Version) for d in listed.Devices}
        return all(seen.get(n) == (1, v) for n, v in LIGHTS.items())
    until("the gateway to bring every light online", fleet_ready)

    def push(**how):
        return api.BatchUpdateFirmware(req(models.BatchUpdateFirmwareRequest,
                                           ProductId=PRODUCT, FirmwareVersion="1.0",
                                           TimeoutInterval=600, **how)).TaskId
    tasks = {
        "versions": push(FirmwareOriVersion="0.5"),
        "devices_and_versions": push(FirmwareOriVersion="0.1",
                                     DeviceNames=["light1", "light2", "light3"]),
        "devices": push(DeviceNames=["light3"]),
    }
    summary["tasks"] = tasks

    def all_final():
        r = api.DescribeFirmwareTaskDevices(req(models.DescribeFirmwareTaskDevicesRequest,
                                                ProductId=PRODUCT, FirmwareVersion="1.0",
                                                Offset=0, Limit=100))
        done = r.Total == len(LIGHTS) and all(d.Status in (5, 6) for d in r.Devices)
        return done and r
    final = until("every device to finish", all_final, timeout=120)
    summary["devices"] = {d.DeviceName: {"task": d.TaskId, "status": d.Status,
                                         "dst": d.DstVersion, "ori": d.OriVersion,
                                         "percent": d.Percent}
                          for d in final.Devices}
    s = api.DescribeFirmwareTaskStatistics(req(models.DescribeFirmwareTaskStatisticsRequest,
                                               ProductId=PRODUCT, FirmwareVersion="1.0"))
    summary["statistics"] = {"success": s.SuccessTotal, "failure": s.FailureTotal,
                             "upgrading": s.UpgradingTotal}
    dist = api.DescribeFirmwareTaskDistribution(req(
        models.DescribeFirmwareTaskDistributionRequest, ProductId=PRODUCT,
        FirmwareVersion="1.0", TaskId=tasks["devices_and_versions"]))
    summary["distribution"] = {str(i.Status): i.Total for i in dist.StatusInfos}
    t = api.DescribeFirmwareTask(req(models.DescribeFirmwareTaskRequest, ProductId=PRODUCT,
                                     FirmwareVersion="1.0", TaskId=tasks["versions"]))
    summary["task"] = {"mode": t.UpgradeMode, "original": t.OriginalVersion, "status": t.Status}
    summary["versions"] = api.GetAllVersion(req(models.GetAllVersionRequest,
                                                ProductId=PRODUCT)).Version

    wrong = client(args.endpoint, args.secret_id, "not-the-secret-key")
    summary["wrong_key"] = error_code(
        lambda: wrong.GetAllVersion(req(models.GetAllVersionRequest, ProductId=PRODUCT)))
    summary["unknown_id"] = error_code(
        lambda: client(args.endpoint, "AKIDnobody", "x").GetAllVersion(
            req(models.GetAllVersionRequest, ProductId=PRODUCT)))
    summary["not_simulated"] = error_code(
        lambda: api.DescribeProducts(req(models.DescribeProductsRequest, Offset=0, Limit=10)))
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
