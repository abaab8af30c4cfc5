#!/usr/bin/env bash
# Make sure the local PostgreSQL and RabbitMQ (with its management plugin, which the
# tests use to make a throwaway vhost per test) are running. Starts only what is down.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
mgmt_up() { curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; }

wait_for() {  # wait_for <what> <check> <seconds>
  local what=$1 check=$2 seconds=$3
  for _ in $(seq "$seconds"); do "$check" && return 0; sleep 1; done
  echo "services-up: $what did not come up in ${seconds}s" >&2
  return 1
}

if ! pg_up; then
  echo "services-up: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for PostgreSQL pg_up 60
fi

if ! amqp_up; then
  echo "services-up: starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ amqp_up 90
fi

if ! mgmt_up; then
  echo "services-up: enabling rabbitmq_management"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  wait_for "RabbitMQ management API" mgmt_up 60
fi
