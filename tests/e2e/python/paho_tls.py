"""A key-auth device on paho-mqtt over server-certificate TLS, as the Tencent SDKs other than
the C SDK connect: port 8883, username and password, no client certificate, and the server
certificate checked against the hub's CA for the host name {product_id}.iotcloud.tencentdevices.com,
which this script alone maps to 127.0.0.1 (no /etc/hosts change).

It subscribes to each topic of the device's space, and to another device's topic (which must be
refused), asks the time on $sys/operation and gets the shadow on $shadow/operation, then prints
one JSON line with what the hub answered."""

import argparse
import base64
import hashlib
import hmac
import json
import socket
import ssl
import sys
import threading

import paho.mqtt.client as mqtt

HUB_SUFFIX = ".iotcloud.tencentdevices.com"
_real_getaddrinfo = socket.getaddrinfo


def _loopback_getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(HUB_SUFFIX):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_getaddrinfo


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--product-id", required=True)
    p.add_argument("--device-name", required=True)
    p.add_argument("--secret", required=True)
    a = p.parse_args()
    pid, dn = a.product_id, a.device_name
    client_id = pid + dn
    username = "%s;21010406;abcde;%d" % (client_id, 9223372036854775807)
    sign = hmac.new(base64.b64decode(a.secret), username.encode(), hashlib.sha1).hexdigest()
    host = pid + HUB_SUFFIX

    own = [
        "%s/%s/control" % (pid, dn),
        "%s/%s/data" % (pid, dn),
        "$shadow/operation/result/%s/%s" % (pid, dn),
        "$sys/operation/result/%s/%s" % (pid, dn),
        "$rrpc/rxd/%s/%s/+" % (pid, dn),
        "$broadcast/rxd/%s/%s" % (pid, dn),
        "$ota/update/%s/%s" % (pid, dn),
        "$gateway/operation/result/%s/%s" % (pid, dn),
    ]
    foreign = "OTHERPROD1/%s/control" % dn
    done = threading.Event()
    state = {"connack": None, "granted": {}, "messages": {}}
    pending = {}

    def on_connect(c, userdata, flags, rc):
        state["connack"] = rc
        if rc != 0:
            done.set()
            return
        for topic in own + [foreign]:
            _, mid = c.subscribe(topic, qos=1)
            pending[mid] = topic

    def on_subscribe(c, userdata, mid, granted):
        state["granted"][pending[mid]] = granted[0]
        if len(state["granted"]) == len(own) + 1:
            c.publish("$sys/operation/%s/%s" % (pid, dn), '{"type": "get", "resource": ["time"]}')
            c.publish(
                "$shadow/operation/%s/%s" % (pid, dn),
                '{"type":"get", "clientToken":"%s-1"}' % pid,
            )

    def on_message(c, userdata, msg):
        state["messages"][msg.topic] = json.loads(msg.payload)
        if len(state["messages"]) == 2:
            done.set()

    c = mqtt.Client(client_id=client_id, clean_session=True)
    c.username_pw_set(username, sign + ";hmacsha1")
    c.tls_set(ca_certs=a.ca, cert_reqs=ssl.CERT_REQUIRED)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect(host, a.port, keepalive=60)
    c.loop_start()
    finished = done.wait(30)
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"finished": finished, **state}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
