/* dstack's additions to mbedTLS's default configuration (include/mbedtls/mbedtls_config.h).
 * The defaults already give TLS 1.2 + 1.3, PSA Crypto, SNI, ALPN, HKDF, X.509 and CSR writing. */
#ifndef DSTACK_MBEDTLS_CONFIG_H
#define DSTACK_MBEDTLS_CONFIG_H

/* Servers may run handlers on several threads; PSA's key store must be thread-safe. */
#define MBEDTLS_THREADING_C
#define MBEDTLS_THREADING_PTHREAD

/* X.509 signature checks, TLS 1.2 key exchange and handshake signatures go through PSA Crypto
 * as TLS 1.3 already does, so a PSA driver (the P-256 engine, meson option p256) serves them all. */
#define MBEDTLS_USE_PSA_CRYPTO

#endif
