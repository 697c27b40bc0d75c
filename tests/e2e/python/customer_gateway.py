"""A small gateway written on the official Tencent IoT Hub Python SDK (tencent-iot-device 1.0.0)
the way a customer would write one: the SDK's own gateway calls, its OTA handle and its HTTP
download helpers (otaDownloadStart / otaFetchYield / IOT_OTAG_CHECK_FIRMWARE), one update at
a time, the new image "burned" by writing it to a file. It keeps the subdevices' versions in
its state directory, and nothing else: no resume across a reboot.

`otasim qualify` runs it against the scenario catalog (tests/e2e/qualify.rs), with:

  python customer_gateway.py --device-info {device_info} --mqtt {hub_host}:{hub_port}
      --state-dir {state_dir} --sub {sub.product_id}/{sub.device_name}={sub.version}

What it does, as the SDK lets it:
- online every subdevice, subscribe its OTA topic, report its version;
- on update_firmware: download from offset 0, check the MD5, write the image, report done and
  the new version; on any download or check failure, report fail with the SDK's upgrade-fail
  helper (the SDK itself reports some failures first: -4 on an MD5 mismatch);
- after each update, a fresh OTA handle (the SDK keeps the fetched byte count of the last
  download otherwise).
"""

import argparse
import json
import os
import signal
import sys
import time

from hub.hub import QcloudHub
from hub.services.ota.ota import Ota

POLL_S = 0.02
CHUNK = 16 * 1024


def log(msg):
    print("customer_gateway: " + msg, flush=True)


class Gateway:
    def __init__(self, args):
        self.state_dir = args.state_dir
        self.versions_path = os.path.join(self.state_dir, "versions.json")
        self.subs = []
        factory = {}
        for s in args.sub:
            ident, version = s.split("=", 1)
            pid, name = ident.split("/", 1)
            self.subs.append((pid, name))
            factory[ident] = version
        saved = {}
        if os.path.exists(self.versions_path):
            with open(self.versions_path) as f:
                saved = json.load(f)
        self.versions = {k: saved.get(k, v) for k, v in factory.items()}
        host, port = args.mqtt.rsplit(":", 1)
        self.qcloud = QcloudHub(device_file=self.sdk_device_file(args.device_info), tls=False).hub
        protocol = self.qcloud._QcloudHubProvider__protocol
        # The SDK dials {product_id}.iotcloud.tencentdevices.com:1883; point it at the hub.
        protocol._AsyncConnClient__host = host
        protocol._AsyncConnClient__mqtt_tcp_port = int(port)

    def sdk_device_file(self, path):
        """The SDK also wants the keys a key-authenticated device does not use."""
        with open(path) as f:
            info = json.load(f)
        info.setdefault("productSecret", "YOUR_PRODUCT_SECRET")
        info.setdefault("region", "china")
        info.setdefault("cert_deviceinfo", {"devCaFile": "", "devCertFile": "", "devPrivateKeyFile": ""})
        out = os.path.join(self.state_dir, "sdk_device_info.json")
        with open(out, "w") as f:
            json.dump(info, f)
        return out

    def save_versions(self):
        tmp = self.versions_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.versions, f)
        os.replace(tmp, self.versions_path)

    def connect(self):
        self.qcloud.connect()
        end = time.time() + 30
        while not self.qcloud.isMqttConnected():
            if time.time() > end:
                log("no MQTT connection")
                sys.exit(1)
            time.sleep(POLL_S)
        rc, _ = self.qcloud.gatewayInit()
        if rc != 0:
            log("gatewayInit rc=%r" % rc)
        for pid, name in self.subs:
            rc = self.qcloud.gatewaySubdevOnline(pid, name)
            log("online %s/%s rc=%r" % (pid, name, rc))
            self.ota_init(pid, name)

    def ota_init(self, pid, name):
        def on_message(topic, qos, payload, userdata):
            pass

        self.qcloud.otaInit(pid, name, on_message)
        self.qcloud.otaReportVersion(pid, name, self.versions["%s/%s" % (pid, name)])

    def update(self, pid, name):
        size, _ = self.qcloud.otaIoctlNumber(pid, name, Ota.OtaCmdType.IOT_OTAG_FILE_SIZE)
        version, _ = self.qcloud.otaIoctlString(pid, name, Ota.OtaCmdType.IOT_OTAG_VERSION, 32)
        log("update %s/%s to %s (%d bytes)" % (pid, name, version, size))
        image = self.download(pid, name, size)
        if image is None:
            self.qcloud.otaReportUpgradeFail(pid, name, version)
            return
        rc, msg = self.qcloud.otaIoctlNumber(pid, name, Ota.OtaCmdType.IOT_OTAG_CHECK_FIRMWARE)
        if rc != 0:
            # The SDK has reported the MD5 mismatch itself.
            log("firmware check of %s failed: %s" % (name, msg))
            return
        flash = os.path.join(self.state_dir, "flash")
        os.makedirs(flash, exist_ok=True)
        with open(os.path.join(flash, "%s_%s.bin" % (pid, name)), "wb") as f:
            f.write(image)
        self.versions["%s/%s" % (pid, name)] = version
        self.save_versions()
        self.qcloud.otaReportUpgradeSuccess(pid, name, version)
        self.qcloud.otaReportVersion(pid, name, version)

    def download(self, pid, name, size):
        if size <= 0:
            log("refusing an image of %d bytes" % size)
            return None
        if self.qcloud.otaDownloadStart(pid, name, 0, size) != 0:
            log("download of %s could not start" % name)
            return None
        got = bytearray()
        while not self.qcloud.otaIsFetchFinished(pid, name):
            buf, n = self.qcloud.otaFetchYield(pid, name, CHUNK)
            if n < 0 or buf is None:
                log("download of %s broke after %d bytes" % (name, len(got)))
                return None
            if n == 0:
                log("download of %s ended early at %d of %d bytes" % (name, len(got), size))
                return None
            got += buf
        return bytes(got)

    def run(self):
        self.connect()
        while True:
            for pid, name in self.subs:
                if self.qcloud.otaIsFetching(pid, name):
                    self.update(pid, name)
                    self.ota_init(pid, name)
            time.sleep(POLL_S)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device-info", required=True)
    parser.add_argument("--mqtt", required=True, help="HOST:PORT of the hub's MQTT listener")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--sub", action="extend", nargs="+", default=[], help="PRODUCT/DEVICE=VERSION ...")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Gateway(args).run()


if __name__ == "__main__":
    main()
