"""A gateway built on the official Tencent IoT Hub Python SDK (tencent-iot-device 1.0.0),
run against `otasim hub` by tests/e2e/python_sdk.rs.

The SDK has no host or port setting: this script sets its MQTT client's private host and port
attributes before connecting, with tls=False. Everything else is the SDK's own code path: MQTT
3.1, expiry in milliseconds, the QoS 1 grant check on $ota/update, gateway operations, and the
OTA download over HTTP with a Range header.

Phases (one process each, as a gateway that reboots between them):
  first:  bind light2, describe, online light1 and light2, offline and online light2,
          then take an update for light1 and crash half way through its download.
  second: come back, resume light1's download from the saved prefix and finish it; take an
          update for light2 whose MD5 the hub corrupts, and fail it; offline and unbind light2.

Exits 0 when every SDK call answered as expected, 1 otherwise. The Rust test then checks what
the hub recorded.
"""

import argparse
import json
import os
import sys
import time
import urllib.request

from hub.hub import QcloudHub
from hub.services.ota.ota import Ota

GATEWAY = ("JR1WOKB7Q7", "gw_deng1", "1RRdhkwmZ45wYXjuPfygeA==")
LIGHT1 = ("E69UADXUYY", "light1")
LIGHT2 = ("E69UADXUYY", "light2")
LIGHT2_SECRET = "light2-secret"
DEADLINE_S = 30


def fail(what):
    print("sdk_gateway: FAILED: " + what, flush=True)
    os._exit(1)


def wait_for(what, check):
    end = time.time() + DEADLINE_S
    while time.time() < end:
        if check():
            return
        time.sleep(0.05)
    fail("timed out waiting for " + what)


def api(addr, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://%s%s" % (addr, path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read()
        return json.loads(text) if text else None


def device_file(workdir):
    info = {
        "auth_mode": "KEY",
        "productId": GATEWAY[0],
        "productSecret": "YOUR_PRODUCT_SECRET",
        "deviceName": GATEWAY[1],
        "key_deviceinfo": {"deviceSecret": GATEWAY[2]},
        "cert_deviceinfo": {"devCaFile": "", "devCertFile": "", "devPrivateKeyFile": ""},
        "subDev": {
            "subdev_num": 2,
            "subdev_list": [
                {"sub_productId": LIGHT1[0], "sub_devName": LIGHT1[1]},
                {"sub_productId": LIGHT2[0], "sub_devName": LIGHT2[1]},
            ],
        },
        "region": "china",
    }
    path = os.path.join(workdir, "device_info.json")
    with open(path, "w") as f:
        json.dump(info, f)
    return path


def connect(mqtt, workdir):
    host, port = mqtt.rsplit(":", 1)
    qcloud = QcloudHub(device_file=device_file(workdir), tls=False).hub
    protocol = qcloud._QcloudHubProvider__protocol
    # The SDK dials {product_id}.iotcloud.tencentdevices.com:1883; point it at the fake hub.
    protocol._AsyncConnClient__host = host
    protocol._AsyncConnClient__mqtt_tcp_port = int(port)
    qcloud.connect()
    wait_for("the MQTT connection", qcloud.isMqttConnected)
    rc, _ = qcloud.gatewayInit()
    if rc != 0:
        fail("gatewayInit rc=%r" % rc)
    return qcloud


def expect_ok(what, result):
    rc = result[0] if isinstance(result, tuple) else result
    if rc != 0:
        fail("%s answered rc=%r" % (what, rc))


def ota_init(qcloud, dev, seen):
    def on_message(topic, qos, payload, userdata):
        seen.append(payload)

    rc, _ = qcloud.otaInit(dev[0], dev[1], on_message)
    if rc != 0:
        fail("otaInit %s: the $ota/update subscription was not granted QoS 1" % dev[1])


def wait_for_command(qcloud, dev):
    wait_for("update_firmware for " + dev[1], lambda: qcloud.otaIsFetching(*dev))
    size, _ = qcloud.otaIoctlNumber(dev[0], dev[1], Ota.OtaCmdType.IOT_OTAG_FILE_SIZE)
    return size


def fetch(qcloud, dev, size, stop_at=None):
    """Reads until the SDK has the whole file or `stop_at` bytes; returns the bytes read."""
    got = bytearray()
    while not qcloud.otaIsFetchFinished(*dev):
        buf, n = qcloud.otaFetchYield(dev[0], dev[1], 4096)
        if n < 0 or buf is None:
            fail("download of %s broke: %r" % (dev[1], n))
        got += buf
        if stop_at is not None and len(got) >= stop_at:
            break
    return bytes(got)


def first(args):
    qcloud = connect(args.mqtt, args.workdir)
    expect_ok("bind light2", qcloud.gatewaySubdevBind(LIGHT2[0], LIGHT2[1], LIGHT2_SECRET))
    rc, bound = qcloud.gatewaySubdevGetBindList(GATEWAY[0], GATEWAY[1])
    names = sorted(d.device_name for d in bound)
    if rc != 0 or "light1" not in names or "light2" not in names:
        fail("describe_sub_devices: rc=%r names=%r" % (rc, names))
    for dev in (LIGHT1, LIGHT2):
        expect_ok("online " + dev[1], qcloud.gatewaySubdevOnline(*dev))
    expect_ok("offline light2", qcloud.gatewaySubdevOffline(*LIGHT2))
    expect_ok("online light2 again", qcloud.gatewaySubdevOnline(*LIGHT2))
    seen = []
    ota_init(qcloud, LIGHT1, seen)
    expect_ok("report_version light1", qcloud.otaReportVersion(LIGHT1[0], LIGHT1[1], "0.1"))
    wait_for("report_version_rsp", lambda: any(m.get("type") == "report_version_rsp" for m in seen))
    api(args.api, "POST", "/api/tasks", {
        "product_id": LIGHT1[0], "version": "V2", "method": "devices", "devices": [LIGHT1[1]],
        "options": {"timeout_ms": 3000, "retries": 3},
    })
    size = wait_for_command(qcloud, LIGHT1)
    expect_ok("download start", qcloud.otaDownloadStart(LIGHT1[0], LIGHT1[1], 0, size))
    prefix = fetch(qcloud, LIGHT1, size, stop_at=size // 2)
    with open(os.path.join(args.workdir, "light1.part"), "wb") as f:
        f.write(prefix)
    print("sdk_gateway: crashing after %d of %d bytes" % (len(prefix), size), flush=True)
    # A crash: no DISCONNECT, no goodbye; the hub sees the TCP connection drop.
    os._exit(0)


def finish_light1(qcloud, args):
    seen = []
    ota_init(qcloud, LIGHT1, seen)
    expect_ok("report_version light1", qcloud.otaReportVersion(LIGHT1[0], LIGHT1[1], "0.1"))
    size = wait_for_command(qcloud, LIGHT1)
    with open(os.path.join(args.workdir, "light1.part"), "rb") as f:
        prefix = f.read()
    # As the C SDK sample does after a reboot: hash the saved prefix, then ask for the rest.
    qcloud.otaMd5Update(LIGHT1[0], LIGHT1[1], prefix)
    expect_ok("resume", qcloud.otaDownloadStart(LIGHT1[0], LIGHT1[1], len(prefix), size))
    rest = fetch(qcloud, LIGHT1, size)
    if len(prefix) + len(rest) != size:
        fail("resumed download has %d + %d bytes, want %d" % (len(prefix), len(rest), size))
    rc, msg = qcloud.otaIoctlNumber(LIGHT1[0], LIGHT1[1], Ota.OtaCmdType.IOT_OTAG_CHECK_FIRMWARE)
    if rc != 0:
        fail("light1 firmware check: %s" % msg)
    expect_ok("done light1", qcloud.otaReportUpgradeSuccess(LIGHT1[0], LIGHT1[1], "V2"))
    expect_ok("report V2", qcloud.otaReportVersion(LIGHT1[0], LIGHT1[1], "V2"))


def fail_light2(qcloud, args):
    api(args.api, "POST", "/api/faults", {
        "when": {"on": "update_firmware",
                 "device": {"product_id": LIGHT2[0], "device_name": LIGHT2[1]}},
        "action": {"do": "wrong_md5"},
        "fires": "once",
    })
    seen = []
    ota_init(qcloud, LIGHT2, seen)
    expect_ok("report_version light2", qcloud.otaReportVersion(LIGHT2[0], LIGHT2[1], "0.1"))
    wait_for("report_version_rsp", lambda: any(m.get("type") == "report_version_rsp" for m in seen))
    api(args.api, "POST", "/api/tasks", {
        "product_id": LIGHT2[0], "version": "V2", "method": "devices", "devices": [LIGHT2[1]],
    })
    size = wait_for_command(qcloud, LIGHT2)
    expect_ok("download light2", qcloud.otaDownloadStart(LIGHT2[0], LIGHT2[1], 0, size))
    fetch(qcloud, LIGHT2, size)
    rc, msg = qcloud.otaIoctlNumber(LIGHT2[0], LIGHT2[1], Ota.OtaCmdType.IOT_OTAG_CHECK_FIRMWARE)
    if rc == 0:
        fail("light2 firmware check passed with a wrong MD5")
    print("sdk_gateway: light2 check failed as expected: %s" % msg, flush=True)


def second(args):
    qcloud = connect(args.mqtt, args.workdir)
    for dev in (LIGHT1, LIGHT2):
        expect_ok("online " + dev[1], qcloud.gatewaySubdevOnline(*dev))
    finish_light1(qcloud, args)
    fail_light2(qcloud, args)
    expect_ok("offline light2", qcloud.gatewaySubdevOffline(*LIGHT2))
    expect_ok("unbind light2", qcloud.gatewaySubdevUnbind(*LIGHT2))
    qcloud.disconnect()
    print("sdk_gateway: second phase done", flush=True)
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["first", "second"])
    parser.add_argument("--mqtt", required=True, help="HOST:PORT of the hub's MQTT listener")
    parser.add_argument("--api", required=True, help="HOST:PORT of the control API")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    {"first": first, "second": second}[args.phase](args)


if __name__ == "__main__":
    sys.exit(main())
