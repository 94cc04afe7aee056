/*
 * clientcert_shim: an LD_PRELOAD library that makes an OpenSSL 3 client (wrk) present a client
 * certificate and a chosen SNI, so a stock load generator can drive an mTLS server.
 *
 * wrk has no client-certificate option and sends the URL's host (127.0.0.1) as SNI. This
 * library wraps two libssl entry points wrk calls:
 *   SSL_CTX_new  - loads SHIM_CERT (PEM: leaf first, then any intermediates) and SHIM_KEY into
 *                  every new context, pins the protocol to SHIM_TLS ("1.2" or "1.3", optional)
 *                  and turns client-side session reuse off, so every connection is a full
 *                  handshake whatever the server allows;
 *   SSL_ctrl     - SSL_set_tlsext_host_name is a macro over SSL_ctrl in OpenSSL 3: replace the
 *                  host name with SHIM_SNI when it is set.
 * A missing or unreadable certificate or key aborts the process: a load run that silently
 * presents no certificate would measure the 403 path instead of the proxy.
 *
 * Build (done by bench/edge/run.py into its output directory, never committed as a binary):
 *   gcc -shared -fPIC -O2 -Wall -o clientcert_shim.so clientcert_shim.c -ldl -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

typedef SSL_CTX *(*ctx_new_fn)(const SSL_METHOD *);
typedef long (*ctrl_fn)(SSL *, int, long, void *);

static ctx_new_fn real_ctx_new;
static ctrl_fn real_ctrl;

static void *next_symbol(const char *name) {
    void *sym = dlsym(RTLD_NEXT, name);
    if (sym == NULL) {
        fprintf(stderr, "clientcert_shim: %s not found in the next library\n", name);
        abort();
    }
    return sym;
}

static void fail(const char *what, const char *path) {
    fprintf(stderr, "clientcert_shim: cannot load %s from %s\n", what, path ? path : "(unset)");
    ERR_print_errors_fp(stderr);
    exit(2);
}

static void configure(SSL_CTX *ctx) {
    const char *cert = getenv("SHIM_CERT");
    const char *key = getenv("SHIM_KEY");
    const char *version = getenv("SHIM_TLS");

    if (cert == NULL || key == NULL) fail("a client certificate (SHIM_CERT and SHIM_KEY)", NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) fail("the certificate chain", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) fail("the private key", key);
    if (SSL_CTX_check_private_key(ctx) != 1) fail("a key matching the certificate", key);

    if (version != NULL && *version != '\0') {
        int v = strcmp(version, "1.3") == 0 ? TLS1_3_VERSION
              : strcmp(version, "1.2") == 0 ? TLS1_2_VERSION
              : 0;
        if (v == 0) {
            fprintf(stderr, "clientcert_shim: SHIM_TLS must be 1.2 or 1.3, not %s\n", version);
            exit(2);
        }
        SSL_CTX_set_min_proto_version(ctx, v);
        SSL_CTX_set_max_proto_version(ctx, v);
    }
    /* No resumption from our side: each new connection must cost a full mTLS handshake. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    if (real_ctx_new == NULL) real_ctx_new = (ctx_new_fn)next_symbol("SSL_CTX_new");
    SSL_CTX *ctx = real_ctx_new(method);
    if (ctx != NULL) configure(ctx);
    return ctx;
}

long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg) {
    if (real_ctrl == NULL) real_ctrl = (ctrl_fn)next_symbol("SSL_ctrl");
    if (cmd == SSL_CTRL_SET_TLSEXT_HOSTNAME) {
        const char *sni = getenv("SHIM_SNI");
        if (sni != NULL && *sni != '\0') parg = (void *)sni;
    }
    return real_ctrl(ssl, cmd, larg, parg);
}
