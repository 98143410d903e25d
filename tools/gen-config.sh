#!/usr/bin/env bash
# Regenerate etc/zund/zund.conf.sample from zund/conf (oslo-config-generator).
set -euo pipefail
cd "$(dirname "$0")/.."
ZUND_CONFIG_SAMPLE=1 python3 -m oslo_config.generator --config-file etc/zund/zund-config-generator.conf
