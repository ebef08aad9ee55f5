"""TLS for the MQTT link (net.py imports this only when mqtt_tls is on): the broker's CA
certificate read from flash, and a client socket wrapped for a non-blocking handshake."""

import ssl


def read_ca(path):
    """The first certificate of a PEM or DER file, as DER (what mbedtls takes as cadata)."""
    with open(path, "rb") as f:
        data = f.read()
    begin = data.find(b"-----BEGIN CERTIFICATE-----")
    if begin < 0:
        return data
    import binascii
    start = data.find(b"\n", begin) + 1
    end = data.find(b"-----END", start)
    return binascii.a2b_base64(data[start:end].replace(b"\n", b"").replace(b"\r", b""))


def wrap(sock, server_hostname, ca_der=None):
    """sock wrapped as a TLS client; the broker's certificate is checked against ca_der
    (DER bytes) when given, else not checked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_der:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=ca_der)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    # The handshake runs inside later non-blocking reads and writes. Its public-key
    # arithmetic is one long CPU stretch on the ESP32 that no socket option can split.
    return ctx.wrap_socket(sock, server_side=False, do_handshake_on_connect=False,
                           server_hostname=server_hostname)
