#!/bin/sh
# The RabbitMQ image of the compose test (made from Debian's rabbitmq-server by
# scripts/compose_images.sh): runs the broker in the foreground as the rabbitmq user, as the
# official image does; guest may log in from other containers (rabbitmq.conf: loopback_users).
set -e
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
exec /usr/sbin/rabbitmq-server
