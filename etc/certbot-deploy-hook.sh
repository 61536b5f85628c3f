#!/bin/sh
# certbot deploy hook: after a renewal, make tau pick up the new certificate without a restart.
# Install: cp etc/certbot-deploy-hook.sh /etc/letsencrypt/renewal-hooks/deploy/tau.sh && chmod 755 it
# tau.ini [tls] certificate/private_key may point straight at /etc/letsencrypt/live/HOST/
# (fullchain.pem, privkey.pem) if the tau user can read them; otherwise this hook copies them.
# SIGHUP (systemctl reload) reloads TLS certificates and the reloadable parts of the config.
set -eu
TAU_TLS_DIR="${TAU_TLS_DIR:-/var/lib/tau/tls}"
if [ -n "${RENEWED_LINEAGE:-}" ] && [ -d "$TAU_TLS_DIR" ]; then
    install -m 0644 -o tau -g tau "$RENEWED_LINEAGE/fullchain.pem" "$TAU_TLS_DIR/cert.pem.new"
    install -m 0600 -o tau -g tau "$RENEWED_LINEAGE/privkey.pem" "$TAU_TLS_DIR/key.pem.new"
    mv -f "$TAU_TLS_DIR/key.pem.new" "$TAU_TLS_DIR/key.pem"
    mv -f "$TAU_TLS_DIR/cert.pem.new" "$TAU_TLS_DIR/cert.pem"
fi
for unit in $(systemctl list-units --type=service --state=running --no-legend 'tau.service' 'tau@*.service' \
              | awk '{print $1}'); do
    systemctl reload "$unit"
done
