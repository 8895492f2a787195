/*
 * auth: the agents' keys file and the SGPROBE-HMAC-SHA256 request signature
 * (DESIGN.md "Authentication").
 *
 * The keys file is validated like the matrix: every error names the field
 * (`keys[2].roles`, `keys[0].secret_file`) and never shows a secret. Secrets
 * are wiped from every buffer this module owns before it is freed: the file's
 * text, a secret file's bytes, the parsed tree's strings and the keys.
 *
 * The Authorization header is parsed by hand because it is one fixed line with
 * three fields in a fixed order; anything that departs from
 * `SGPROBE-HMAC-SHA256 KeyId=<id>, Timestamp=<digits>, Signature=<64 hex>`
 * (save extra spaces after the commas) is malformed.
 */
#include "sgprobe/auth.h"
#include "sgprobe/fileio.h"
#include "sgprobe/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* Longest key id or role name: DNS's limit, as for the matrix's role names. */
#define NAME_MAX_LEN 253

/* Roles one key may speak for: as many as a matrix may hold. */
#define MAX_ROLES_PER_KEY 1024

/* Longest field path built while validating: `keys[4095].roles[1023]` and a key. */
#define PATH_LEN 96

/* Longest decimal timestamp accepted in a header: 18 digits always fit an int64_t. */
#define MAX_TS_DIGITS 18

/* A SHA-256 or HMAC-SHA256 output, in bytes. */
#define DIGEST_LEN 32

/*
 * The validation context: where the error goes, prefixed with the path given to
 * auth_keys_load() (NULL for auth_keys_parse(): a message about the whole
 * document then reads `keys file: ...`), and where relative secret files are
 * (NULL for the working directory). No caller ever passes a secret.
 */
typedef struct {
	json_ctx_t j;
	const char *base_dir;
} ctx_t;

/* True for a character allowed in a key id or a role name. */
static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* True when the `len` bytes at `s` form a key id or a role name. */
static bool valid_name(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	for (i = 0; i < len; i++) {
		if (!name_char(s[i]))
			return false;
	}
	return true;
}

/* Overwrites and frees a buffer that may hold a secret. */
static void free_secret(void *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

/*
 * Wipes every string of a parsed tree (the keys file's secrets are among them)
 * so that cJSON_Delete() returns no secret to the allocator.
 */
static void wipe_tree(cJSON *item)
{
	cJSON *child;

	for (; item; item = item->next) {
		if (cJSON_IsString(item) && item->valuestring)
			OPENSSL_cleanse(item->valuestring, strlen(item->valuestring));
		child = item->child;
		if (child)
			wipe_tree(child);
	}
}

/* Joins `base_dir` and a relative `path` into a new string; an absolute path is copied. */
static char *resolve_path(const char *base_dir, const char *path)
{
	size_t blen;
	char *out;

	if (path[0] == '/' || !base_dir || !base_dir[0])
		return strdup(path);
	blen = strlen(base_dir);
	out = malloc(blen + 1 + strlen(path) + 1);
	if (!out)
		return NULL;
	memcpy(out, base_dir, blen);
	out[blen] = '/';
	strcpy(out + blen + 1, path);
	return out;
}

/*
 * Reads a key's secret from `file` (relative to the base dir), stripping one
 * trailing "\n" or "\r\n". `path` is the field's path for messages.
 */
static int read_secret_file(ctx_t *c, const char *file, const char *path, auth_key_t *key)
{
	char q[JSON_QUOTE_BUF];
	char *full;
	char *buf = NULL;
	size_t len = 0;
	size_t n;
	int result;

	full = resolve_path(c->base_dir, file);
	if (!full)
		return json_fail_oom(&c->j);
	result = fileio_read(full, AUTH_MAX_FILE_BYTES, &buf, &len);
	free(full);
	if (result == -ENOMEM)
		return json_fail_oom(&c->j);
	if (result == -EFBIG)
		return json_fail(&c->j, "%s: '%s' is larger than the limit of %u bytes", path,
		                 json_quote(file, q, sizeof(q)), AUTH_MAX_FILE_BYTES);
	if (result)
		return json_fail(&c->j, "%s: cannot read '%s': %s", path,
		                 json_quote(file, q, sizeof(q)), strerror(-result));
	n = len;
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (n == 0) {
		fileio_free(buf, len);
		return json_fail(&c->j, "%s: '%s' holds an empty secret", path,
		                 json_quote(file, q, sizeof(q)));
	}
	/* The buffer becomes the secret; only its length shrinks (wiped in full later). */
	OPENSSL_cleanse(buf + n, len + 1 - n);
	key->secret = (unsigned char *)buf;
	key->secret_len = n;
	return 0;
}

/* Copies a secret given in the keys file. */
static int copy_secret(ctx_t *c, const cJSON *item, const char *path, auth_key_t *key)
{
	size_t len;

	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
		return json_fail(&c->j, "%s: must be a non-empty string", path);
	len = strlen(item->valuestring);
	key->secret = malloc(len + 1);
	if (!key->secret)
		return json_fail_oom(&c->j);
	memcpy(key->secret, item->valuestring, len + 1);
	key->secret_len = len;
	return 0;
}

static int parse_roles(ctx_t *c, const cJSON *item, const char *path, auth_key_t *key)
{
	char q[JSON_QUOTE_BUF];
	char p[PATH_LEN];
	const cJSON *el;
	size_t i;
	size_t j;
	int n;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return json_fail(&c->j, "%s: must be a non-empty array of role names", path);
	n = cJSON_GetArraySize(item);
	if (n > MAX_ROLES_PER_KEY)
		return json_fail(&c->j, "%s: more than %d roles", path, MAX_ROLES_PER_KEY);
	key->roles = calloc((size_t)n, sizeof(*key->roles));
	if (!key->roles)
		return json_fail_oom(&c->j);
	i = 0;
	cJSON_ArrayForEach(el, item)
	{
		const char *s;

		json_pathf(p, sizeof(p), "%s[%zu]", path, i);
		if (!cJSON_IsString(el) || !el->valuestring ||
		    !valid_name(el->valuestring, strlen(el->valuestring)))
			return json_fail(
			    &c->j,
			    "%s: must be a role name (at most %d of A-Z, a-z, 0-9, '.', "
			    "'_', '-')",
			    p, NAME_MAX_LEN);
		s = el->valuestring;
		for (j = 0; j < i; j++) {
			if (strcmp(key->roles[j], s) == 0)
				return json_fail(&c->j, "%s: duplicate role '%s'", p,
				                 json_quote(s, q, sizeof(q)));
		}
		key->roles[i] = strdup(s);
		if (!key->roles[i])
			return json_fail_oom(&c->j);
		key->n_roles = ++i;
	}
	return 0;
}

enum { KEY_ID, KEY_SECRET, KEY_SECRET_FILE, KEY_ROLES, KEY_N_KEYS };

static const char *const key_keys[KEY_N_KEYS] = {"id", "secret", "secret_file", "roles"};

enum { TOP_KEYS, TOP_N_KEYS };

static const char *const top_keys[TOP_N_KEYS] = {"keys"};

/*
 * Checks an object's keys against the known ones: an unknown or repeated key
 * (cJSON keeps both) is an error naming it after `path`. `seen` gets one bit
 * per known key present.
 */
static int check_keys(ctx_t *c, const cJSON *obj, const char *path, const char *const *keys,
                      size_t n_keys, unsigned *seen)
{
	char q[JSON_QUOTE_BUF];
	const cJSON *item;
	size_t k;

	*seen = 0;
	cJSON_ArrayForEach(item, obj)
	{
		const char *name = item->string ? item->string : "";

		for (k = 0; k < n_keys; k++) {
			if (strcmp(name, keys[k]) == 0)
				break;
		}
		json_quote(name, q, sizeof(q));
		if (k == n_keys)
			return json_fail(&c->j, "%s%s%s: unknown key", path, path[0] ? "." : "", q);
		if (*seen & (1u << k))
			return json_fail(&c->j, "%s%s%s: duplicate key", path, path[0] ? "." : "",
			                 q);
		*seen |= 1u << k;
	}
	return 0;
}

/* Parses key object `obj` (path `base`, `keys[i]`) into `key`, which the caller frees. */
static int parse_key(ctx_t *c, const cJSON *obj, const char *base, const auth_keys_t *done,
                     auth_key_t *key)
{
	char q[JSON_QUOTE_BUF];
	char p[PATH_LEN];
	const cJSON *item;
	unsigned seen;
	size_t i;
	int result;

	if (!cJSON_IsObject(obj))
		return json_fail(&c->j, "%s: must be an object", base);
	result = check_keys(c, obj, base, key_keys, KEY_N_KEYS, &seen);
	if (result)
		return result;

	json_pathf(p, sizeof(p), "%s.id", base);
	item = cJSON_GetObjectItemCaseSensitive(obj, "id");
	if (!item)
		return json_fail(&c->j, "%s: required", p);
	if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
		return json_fail(&c->j, "%s: must be a non-empty string", p);
	if (!valid_name(item->valuestring, strlen(item->valuestring)))
		return json_fail(&c->j, "%s: must be at most %d of A-Z, a-z, 0-9, '.', '_', '-'", p,
		                 NAME_MAX_LEN);
	for (i = 0; i < done->n_keys; i++) {
		if (strcmp(done->keys[i].id, item->valuestring) == 0)
			return json_fail(&c->j, "%s: duplicate key id '%s'", p,
			                 json_quote(item->valuestring, q, sizeof(q)));
	}
	key->id = strdup(item->valuestring);
	if (!key->id)
		return json_fail_oom(&c->j);

	if ((seen & (1u << KEY_SECRET)) && (seen & (1u << KEY_SECRET_FILE)))
		return json_fail(&c->j, "%s: secret and secret_file exclude each other", base);
	if (seen & (1u << KEY_SECRET)) {
		json_pathf(p, sizeof(p), "%s.secret", base);
		result = copy_secret(c, cJSON_GetObjectItemCaseSensitive(obj, "secret"), p, key);
	} else if (seen & (1u << KEY_SECRET_FILE)) {
		json_pathf(p, sizeof(p), "%s.secret_file", base);
		item = cJSON_GetObjectItemCaseSensitive(obj, "secret_file");
		if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
			return json_fail(&c->j, "%s: must be a non-empty string (a path)", p);
		result = read_secret_file(c, item->valuestring, p, key);
	} else {
		return json_fail(&c->j, "%s: one of secret and secret_file is required", base);
	}
	if (result)
		return result;

	json_pathf(p, sizeof(p), "%s.roles", base);
	item = cJSON_GetObjectItemCaseSensitive(obj, "roles");
	if (!item)
		return json_fail(&c->j, "%s: required", p);
	return parse_roles(c, item, p, key);
}

static int parse_doc(ctx_t *c, const cJSON *root, auth_keys_t *keys)
{
	char base[PATH_LEN];
	const cJSON *arr;
	const cJSON *item;
	unsigned seen;
	int n;
	int result;

	if (!cJSON_IsObject(root))
		return json_fail_doc(&c->j, "must be a JSON object");
	result = check_keys(c, root, "", top_keys, TOP_N_KEYS, &seen);
	if (result)
		return result;
	arr = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!arr)
		return json_fail(&c->j, "keys: required");
	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
		return json_fail(&c->j, "keys: must be a non-empty array of keys");
	n = cJSON_GetArraySize(arr);
	if (n > AUTH_MAX_KEYS)
		return json_fail(&c->j, "keys: more than %d keys", AUTH_MAX_KEYS);
	keys->keys = calloc((size_t)n, sizeof(*keys->keys));
	if (!keys->keys)
		return json_fail_oom(&c->j);
	cJSON_ArrayForEach(item, arr)
	{
		auth_key_t *key = &keys->keys[keys->n_keys];

		json_pathf(base, sizeof(base), "keys[%zu]", keys->n_keys);
		result = parse_key(c, item, base, keys, key);
		/* Counted even on failure, so that auth_keys_free() frees a half-parsed key. */
		keys->n_keys++;
		if (result)
			return result;
	}
	return 0;
}

static auth_keys_t *parse_with(ctx_t *c, const char *text, size_t len)
{
	auth_keys_t *keys = NULL;
	cJSON *root;
	unsigned line;
	int result;

	if (len > AUTH_MAX_FILE_BYTES) {
		char msg[AUTH_ERR_MAX];

		json_pathf(msg, sizeof(msg), "%zu bytes exceeds the limit of %u", len,
		           AUTH_MAX_FILE_BYTES);
		json_fail_doc(&c->j, msg);
		return NULL;
	}
	root = json_parse(text ? text : "", text ? len : 0, &line, &result);
	if (!root) {
		char msg[AUTH_ERR_MAX];

		if (result == -ENOMEM) {
			json_fail_oom(&c->j);
			return NULL;
		}
		json_pathf(msg, sizeof(msg), "invalid JSON near line %u", line);
		json_fail_doc(&c->j, msg);
		return NULL;
	}
	keys = calloc(1, sizeof(*keys));
	if (!keys) {
		json_fail_oom(&c->j);
		goto out;
	}
	result = parse_doc(c, root, keys);
	if (result) {
		auth_keys_free(keys);
		keys = NULL;
	}
out:
	wipe_tree(root);
	cJSON_Delete(root);
	return keys;
}

auth_keys_t *auth_keys_parse(const char *text, size_t len, const char *base_dir, char *err,
                             size_t errlen)
{
	ctx_t c = {{err, errlen, NULL, "keys file"}, base_dir};

	if (err && errlen > 0)
		err[0] = '\0';
	return parse_with(&c, text, len);
}

auth_keys_t *auth_keys_load(const char *path, char *err, size_t errlen)
{
	ctx_t c = {{err, errlen, path, "keys file"}, NULL};
	auth_keys_t *keys = NULL;
	const char *slash;
	char *dir = NULL;
	char *text = NULL;
	size_t len = 0;
	int result;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!path) {
		json_fail_doc(&c.j, "no path");
		return NULL;
	}
	result = fileio_read(path, AUTH_MAX_FILE_BYTES, &text, &len);
	if (result == -EFBIG) {
		json_fail(&c.j, "larger than the limit of %u bytes", AUTH_MAX_FILE_BYTES);
		return NULL;
	}
	if (result) {
		json_fail(&c.j, "cannot read: %s", strerror(-result));
		return NULL;
	}
	/* Secret files are relative to the keys file's folder. */
	slash = strrchr(path, '/');
	if (slash) {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		dir = strndup(path, n);
		if (!dir) {
			json_fail_oom(&c.j);
			goto out;
		}
	}
	c.base_dir = dir;
	keys = parse_with(&c, text, len);
out:
	free(dir);
	fileio_free(text, len);
	return keys;
}

void auth_keys_free(auth_keys_t *keys)
{
	size_t i;
	size_t j;

	if (!keys)
		return;
	for (i = 0; i < keys->n_keys; i++) {
		auth_key_t *k = &keys->keys[i];

		free(k->id);
		/* Every secret buffer holds secret_len bytes and a NUL after them. */
		free_secret(k->secret, k->secret ? k->secret_len + 1 : 0);
		for (j = 0; j < k->n_roles; j++)
			free(k->roles[j]);
		free(k->roles);
	}
	free(keys->keys);
	free(keys);
}

const auth_key_t *auth_keys_find(const auth_keys_t *keys, const char *id, size_t id_len)
{
	size_t i;

	/* An id with a NUL in it names no key; without one, strncmp() below stays in bounds. */
	if (!keys || !id || memchr(id, '\0', id_len))
		return NULL;
	for (i = 0; i < keys->n_keys; i++) {
		const char *k = keys->keys[i].id;

		if (strncmp(k, id, id_len) == 0 && k[id_len] == '\0')
			return &keys->keys[i];
	}
	return NULL;
}

bool auth_key_allows(const auth_key_t *key, const char *role)
{
	size_t i;

	if (!key || !role)
		return false;
	for (i = 0; i < key->n_roles; i++) {
		if (strcmp(key->roles[i], role) == 0)
			return true;
	}
	return false;
}

/* Writes `n` bytes as lowercase hex and a NUL into `hex` (2n + 1 bytes). */
static void to_hex(const unsigned char *bytes, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 0x0f];
	}
	hex[2 * n] = '\0';
}

int auth_sign(const unsigned char *secret, size_t secret_len, const char *method,
              const char *path_query, int64_t timestamp, const void *body, size_t body_len,
              char *hex)
{
	/* OpenSSL wants a non-NULL key even of length 0, and data even for an empty body. */
	static const unsigned char empty[1] = {0};
	unsigned char digest[DIGEST_LEN];
	unsigned char mac_out[DIGEST_LEN];
	char body_hex[AUTH_HEX_LEN + 1];
	char ts[24];
	OSSL_PARAM params[2];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	size_t out_len = 0;
	int result = -EIO;

	if (!method || !path_query || !hex || (!secret && secret_len) || (!body && body_len))
		return -EINVAL;
	if (!EVP_Digest(body ? body : empty, body_len, digest, NULL, EVP_sha256(), NULL))
		return -EIO;
	to_hex(digest, sizeof(digest), body_hex);
	snprintf(ts, sizeof(ts), "%lld", (long long)timestamp);

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		goto out;
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx)
		goto out;
	/* The string to sign, fed in pieces: METHOD \n path?query \n timestamp \n hex(sha256(body)). */
	if (!EVP_MAC_init(ctx, secret ? secret : empty, secret_len, params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)method, strlen(method)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)path_query, strlen(path_query)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)body_hex, AUTH_HEX_LEN) ||
	    !EVP_MAC_final(ctx, mac_out, &out_len, sizeof(mac_out)) || out_len != DIGEST_LEN)
		goto out;
	to_hex(mac_out, sizeof(mac_out), hex);
	result = 0;
out:
	OPENSSL_cleanse(mac_out, sizeof(mac_out));
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return result;
}

int auth_header(const char *key_id, const unsigned char *secret, size_t secret_len,
                const char *method, const char *path_query, int64_t timestamp, const void *body,
                size_t body_len, char *out, size_t outlen)
{
	char hex[AUTH_HEX_LEN + 1];
	int n;
	int result;

	if (!key_id || !out)
		return -EINVAL;
	result = auth_sign(secret, secret_len, method, path_query, timestamp, body, body_len, hex);
	if (result)
		return result;
	n = snprintf(out, outlen, AUTH_SCHEME " KeyId=%s, Timestamp=%lld, Signature=%s", key_id,
	             (long long)timestamp, hex);
	if (n < 0)
		return -EIO;
	if ((size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

/* The fields of a parsed Authorization header; `id` points into the header. */
typedef struct {
	const char *id;
	size_t id_len;
	int64_t timestamp;
	const char *signature; /* AUTH_HEX_LEN lowercase hex digits, not NUL-terminated */
} parsed_t;

/* A cursor over the header's bytes. */
typedef struct {
	const char *p;
	const char *end;
} cursor_t;

/* Consumes `lit` when the cursor is at it. */
static bool eat(cursor_t *cur, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(cur->end - cur->p) < n || memcmp(cur->p, lit, n) != 0)
		return false;
	cur->p += n;
	return true;
}

/* Consumes a comma and at least one space. */
static bool eat_separator(cursor_t *cur)
{
	if (!eat(cur, ",") || !eat(cur, " "))
		return false;
	while (cur->p < cur->end && *cur->p == ' ')
		cur->p++;
	return true;
}

/*
 * Parses `SGPROBE-HMAC-SHA256 KeyId=<id>, Timestamp=<digits>, Signature=<hex>`.
 * The timestamp is canonical decimal (no sign, no leading zero), so that the
 * signed string is exactly the header's text.
 */
static bool parse_header(const char *header, size_t len, parsed_t *out)
{
	cursor_t cur = {header, header + len};
	const char *start;
	int64_t ts = 0;
	size_t i;

	if (!eat(&cur, AUTH_SCHEME " KeyId="))
		return false;
	start = cur.p;
	while (cur.p < cur.end && name_char(*cur.p))
		cur.p++;
	if (!valid_name(start, (size_t)(cur.p - start)))
		return false;
	out->id = start;
	out->id_len = (size_t)(cur.p - start);

	if (!eat_separator(&cur) || !eat(&cur, "Timestamp="))
		return false;
	start = cur.p;
	while (cur.p < cur.end && *cur.p >= '0' && *cur.p <= '9') {
		if (cur.p - start >= MAX_TS_DIGITS)
			return false;
		ts = ts * 10 + (*cur.p - '0');
		cur.p++;
	}
	if (cur.p == start || (*start == '0' && cur.p - start > 1))
		return false;
	out->timestamp = ts;

	if (!eat_separator(&cur) || !eat(&cur, "Signature="))
		return false;
	if (cur.end - cur.p != AUTH_HEX_LEN)
		return false;
	for (i = 0; i < AUTH_HEX_LEN; i++) {
		char ch = cur.p[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	out->signature = cur.p;
	return true;
}

/* True when `a` and `b` are more than AUTH_MAX_SKEW_S apart, without overflow. */
static bool too_far(int64_t a, int64_t b)
{
	uint64_t d = a >= b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;

	return d > AUTH_MAX_SKEW_S;
}

auth_result_t auth_verify(const auth_keys_t *keys, const char *header, size_t header_len,
                          const char *method, const char *path_query, const void *body,
                          size_t body_len, const char *role, int64_t now, const auth_key_t **key)
{
	char expected[AUTH_HEX_LEN + 1];
	const auth_key_t *k;
	parsed_t h;
	bool same;

	if (key)
		*key = NULL;
	if (!header)
		return AUTH_MISSING;
	if (!parse_header(header, header_len, &h))
		return AUTH_MALFORMED;
	k = auth_keys_find(keys, h.id, h.id_len);
	if (!k)
		return AUTH_UNKNOWN_KEY;
	if (too_far(now, h.timestamp))
		return AUTH_STALE_TIMESTAMP;
	/* A failure to compute the signature refuses the request: never fail open. */
	if (auth_sign(k->secret, k->secret_len, method, path_query, h.timestamp, body, body_len,
	              expected))
		return AUTH_BAD_SIGNATURE;
	same = CRYPTO_memcmp(expected, h.signature, AUTH_HEX_LEN) == 0;
	OPENSSL_cleanse(expected, sizeof(expected));
	if (!same)
		return AUTH_BAD_SIGNATURE;
	/* The signature holds: the key is known to the caller, for its log line. */
	if (key)
		*key = k;
	if (role && !auth_key_allows(k, role))
		return AUTH_ROLE_FORBIDDEN;
	return AUTH_OK;
}

const char *auth_result_message(auth_result_t result)
{
	switch (result) {
	case AUTH_OK:
		return "ok";
	case AUTH_MISSING:
		return "missing Authorization header";
	case AUTH_MALFORMED:
		return "malformed Authorization header";
	case AUTH_UNKNOWN_KEY:
		return "unknown key";
	case AUTH_STALE_TIMESTAMP:
		return "timestamp too far from the collector's clock";
	case AUTH_BAD_SIGNATURE:
		return "bad signature";
	case AUTH_ROLE_FORBIDDEN:
		return "key may not speak for this role";
	}
	return "refused";
}
