//! Broker glue tests over real TCP on 127.0.0.1 with rumqttc clients (and a raw socket for
//! MQTT 3.1, which rumqttc does not speak). They wait on events with a deadline, never on sleeps.

mod connect;
mod lifecycle;
mod pubsub;
mod support;
