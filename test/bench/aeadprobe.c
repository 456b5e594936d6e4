/*
 * aeadprobe — the crypto ceiling of the hcmd benchmark (test/bench/run.sh).
 *
 * One AEAD pass (encrypt + tag) over 16 KiB records, one core, through
 * mbedTLS's cipher layer as its TLS record layer calls it: a 12-byte nonce
 * that changes per record and 13 bytes of additional data. Prints MiB/s for
 * ChaCha20-Poly1305 (the suite hcmd and hcrelay negotiate,
 * TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256) and AES-128-GCM. Built
 * with -DHCB_OPENSSL it also prints OpenSSL's figures (the library under
 * stunnel and Node), for context.
 *
 *   aeadprobe [SECONDS]     (default 1 second per cipher)
 *
 * Output, one line per cipher:  aead lib=mbedtls cipher=chacha20-poly1305
 * mib_s=N
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/cipher.h>
#include <mbedtls/version.h>

#ifdef HCB_OPENSSL
#include <openssl/evp.h>
#endif

#define REC 16384

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint8_t in[REC], out[REC + 16], key[32], ad[13];

static double run_mbedtls(mbedtls_cipher_type_t type, int keybits, double secs)
{
    mbedtls_cipher_context_t c;
    const mbedtls_cipher_info_t *info = mbedtls_cipher_info_from_type(type);
    if (info == NULL)
        return -1;
    mbedtls_cipher_init(&c);
    if (mbedtls_cipher_setup(&c, info) != 0 ||
        mbedtls_cipher_setkey(&c, key, keybits, MBEDTLS_ENCRYPT) != 0)
        return -1;
    uint8_t iv[12] = {0};
    uint64_t seq = 0, bytes = 0;
    double t0 = now(), t = t0;
    while (t - t0 < secs) {
        for (int i = 0; i < 16; i++) {
            size_t olen = 0;
            seq++;
            memcpy(iv + 4, &seq, 8);
            memcpy(ad, &seq, 8);
            if (mbedtls_cipher_auth_encrypt_ext(&c, iv, sizeof(iv), ad,
                                                sizeof(ad), in, REC, out,
                                                sizeof(out), &olen, 16) != 0)
                return -1;
            bytes += REC;
        }
        t = now();
    }
    mbedtls_cipher_free(&c);
    return (double)bytes / 1048576.0 / (t - t0);
}

#ifdef HCB_OPENSSL
static double run_openssl(const EVP_CIPHER *cipher, double secs)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t iv[12] = {0}, tag[16];
    uint64_t seq = 0, bytes = 0;
    int len;
    double t0 = now(), t = t0;
    if (EVP_EncryptInit_ex(c, cipher, NULL, key, iv) != 1)
        return -1;
    while (t - t0 < secs) {
        for (int i = 0; i < 16; i++) {
            seq++;
            memcpy(iv + 4, &seq, 8);
            memcpy(ad, &seq, 8);
            if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv) != 1 ||
                EVP_EncryptUpdate(c, NULL, &len, ad, sizeof(ad)) != 1 ||
                EVP_EncryptUpdate(c, out, &len, in, REC) != 1 ||
                EVP_EncryptFinal_ex(c, out + len, &len) != 1 ||
                EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
                return -1;
            bytes += REC;
        }
        t = now();
    }
    EVP_CIPHER_CTX_free(c);
    return (double)bytes / 1048576.0 / (t - t0);
}
#endif

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    int bad = 0;
    if (secs <= 0)
        secs = 1.0;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 131u + 7u);
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i + 1);

    struct {
        const char *name;
        mbedtls_cipher_type_t type;
        int bits;
    } m[] = {{"chacha20-poly1305", MBEDTLS_CIPHER_CHACHA20_POLY1305, 256},
             {"aes-128-gcm", MBEDTLS_CIPHER_AES_128_GCM, 128}};
    for (int i = 0; i < 2; i++) {
        double r = run_mbedtls(m[i].type, m[i].bits, secs);
        if (r < 0) {
            fprintf(stderr, "aeadprobe: mbedTLS %s failed\n", m[i].name);
            bad = 1;
            continue;
        }
        printf("aead lib=mbedtls-%s cipher=%s mib_s=%.1f\n",
               MBEDTLS_VERSION_STRING, m[i].name, r);
    }
#ifdef HCB_OPENSSL
    {
        double r = run_openssl(EVP_chacha20_poly1305(), secs);
        if (r > 0)
            printf("aead lib=openssl cipher=chacha20-poly1305 mib_s=%.1f\n", r);
        r = run_openssl(EVP_aes_128_gcm(), secs);
        if (r > 0)
            printf("aead lib=openssl cipher=aes-128-gcm mib_s=%.1f\n", r);
    }
#endif
    return bad;
}
