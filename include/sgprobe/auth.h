/*
 * auth: the agents' keys and the SGPROBE-HMAC-SHA256 request signature
 * (DESIGN.md "Authentication").
 *
 *   Authorization: SGPROBE-HMAC-SHA256 KeyId=<id>, Timestamp=<unix s>, Signature=<hex>
 *
 * where Signature is lowercase hex of HMAC-SHA256(secret, METHOD "\n"
 * path-with-query "\n" timestamp "\n" hex(sha256(body))). Secrets never leave
 * this module in a message or a log line.
 */
#ifndef SGPROBE_AUTH_H
#define SGPROBE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SCHEME         "SGPROBE-HMAC-SHA256"
#define AUTH_MAX_SKEW_S     300        /* timestamps further from now are refused */
#define AUTH_ERR_MAX        256        /* size of the error buffers below */
#define AUTH_MAX_KEYS       4096       /* keys in one keys file */
#define AUTH_MAX_FILE_BYTES (1u << 20) /* a keys file, a secret file */
#define AUTH_HEX_LEN        64         /* a signature or a SHA-256 in hex */

/** One key: who may speak for which roles. */
typedef struct {
	char *id;              /* owned */
	unsigned char *secret; /* owned; the bytes of the string as given */
	size_t secret_len;
	char **roles; /* owned */
	size_t n_roles;
} auth_key_t;

/** A set of keys. Two keys may be valid for a role at once (rotation). */
typedef struct {
	auth_key_t *keys;
	size_t n_keys;
} auth_keys_t;

/** Why a request was refused; each is answered 401 except AUTH_OK. */
typedef enum {
	AUTH_OK = 0,
	AUTH_MISSING,         /* no Authorization header */
	AUTH_MALFORMED,       /* not the scheme, or a field missing or malformed */
	AUTH_UNKNOWN_KEY,     /* KeyId names no key */
	AUTH_STALE_TIMESTAMP, /* more than AUTH_MAX_SKEW_S from now */
	AUTH_BAD_SIGNATURE,   /* the signature does not match (compared in constant time) */
	AUTH_ROLE_FORBIDDEN   /* the key may not speak for that role */
} auth_result_t;

/**
 * Parses a keys document `{"keys": [{"id", "secret" | "secret_file", "roles": [...]}]}`
 * of `len` bytes, strictly (unknown keys, duplicate ids, empty secrets are errors
 * naming the field, never the secret). A `secret_file` is read relative to
 * `base_dir` unless absolute, its trailing newline stripped. Returns a new set
 * (auth_keys_free()), or NULL with a message in `err`.
 */
auth_keys_t *auth_keys_parse(const char *text, size_t len, const char *base_dir, char *err,
                             size_t errlen);

/** Reads and parses a keys file; `secret_file`s are relative to its folder. */
auth_keys_t *auth_keys_load(const char *path, char *err, size_t errlen);

/** Frees a key set, wiping the secrets first. auth_keys_free(NULL) does nothing. */
void auth_keys_free(auth_keys_t *keys);

/** Returns the key with this id, or NULL. */
const auth_key_t *auth_keys_find(const auth_keys_t *keys, const char *id, size_t id_len);

/** True when `key` may speak for `role`. */
bool auth_key_allows(const auth_key_t *key, const char *role);

/**
 * Computes the signature of a request into `hex` (AUTH_HEX_LEN + 1 bytes,
 * NUL-terminated). `path_query` is the request target as sent (path and query).
 * Returns 0, or -EIO when OpenSSL fails.
 */
int auth_sign(const unsigned char *secret, size_t secret_len, const char *method,
              const char *path_query, int64_t timestamp, const void *body, size_t body_len,
              char *hex);

/**
 * Writes the whole Authorization header value for a request into `out`.
 * Returns 0, -ENOSPC when `outlen` is too small, or -EIO.
 */
int auth_header(const char *key_id, const unsigned char *secret, size_t secret_len,
                const char *method, const char *path_query, int64_t timestamp, const void *body,
                size_t body_len, char *out, size_t outlen);

/**
 * Verifies a request's Authorization header (`header`, `header_len` bytes, not
 * NUL-terminated; NULL when absent) at wall-clock time `now` (unix seconds).
 * `role` is the role the request speaks for (a report's agent role, a plan's
 * role); NULL skips that check, for a caller that checks it later with
 * auth_key_allows(). On AUTH_OK and AUTH_ROLE_FORBIDDEN (the signature held),
 * *key (when not NULL) is the key that signed, for the caller's log line; on
 * any other result it is NULL.
 */
auth_result_t auth_verify(const auth_keys_t *keys, const char *header, size_t header_len,
                          const char *method, const char *path_query, const void *body,
                          size_t body_len, const char *role, int64_t now, const auth_key_t **key);

/** A short, fixed message for a refusal ("bad signature"); never NULL, never secret. */
const char *auth_result_message(auth_result_t result);

#endif
