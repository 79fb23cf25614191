# OCSP stapling of the site (roles/tls.py): nginx includes $STAPLING, which turns stapling on only for a
# certificate that names an OCSP responder. Let's Encrypt ended OCSP in 2025 and a self-signed
# certificate has none; there `ssl_stapling on` only makes nginx warn at every start.
# Given: CERT (the site's chain), RESPONDER (the responder's URL, empty for none, or "-": the one $CERT
# names on this host), STAPLING (the file nginx includes).
# shellcheck disable=SC2154  # CERT, RESPONDER, STAPLING: assigned before

# What $STAPLING should say, on stdout.
stapling_conf() {
    url=$RESPONDER
    if [ "$url" = - ]; then
        url=$(openssl x509 -noout -ocsp_uri -in "$CERT" 2>/dev/null | head -n 1)
    fi
    if [ -z "$url" ]; then
        echo "# Managed by provision: the certificate names no OCSP responder, so nothing to staple."
        return
    fi
    echo "# Managed by provision: the certificate names the OCSP responder $url."
    echo "ssl_stapling on;"
    echo "ssl_stapling_verify on;"
    echo "ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;"
    # nginx looks the responder up again at run time with its own resolver: the host's first one
    nameserver=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null)
    case $nameserver in
        '') ;;
        *:*) echo "resolver [$nameserver];" ;;
        *) echo "resolver $nameserver;" ;;
    esac
}

write_stapling_conf() {
    stapling_conf >"$STAPLING.provision-tmp" && mv -f "$STAPLING.provision-tmp" "$STAPLING"
}
