/* dstack's additions to mbedTLS's default configuration (include/mbedtls/mbedtls_config.h).
 * The defaults already give TLS 1.2 + 1.3, PSA Crypto, SNI, ALPN, HKDF, X.509 and CSR writing. */
#ifndef DSTACK_MBEDTLS_CONFIG_H
#define DSTACK_MBEDTLS_CONFIG_H

/* Servers may run handlers on several threads; PSA's key store must be thread-safe. */
#define MBEDTLS_THREADING_C
#define MBEDTLS_THREADING_PTHREAD

#endif
