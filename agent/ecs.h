/*
 * ecs: who this agent is. Inside ECS, from the task metadata endpoint v4
 * (${ECS_CONTAINER_METADATA_URI_V4}/task), fetched once at start, before the
 * loop runs; outside ECS, hostname/role in the cluster "default". Flags then
 * override each field (ecs_identity_override()).
 */
#ifndef SGPROBE_ECS_H
#define SGPROBE_ECS_H

#include <stddef.h>

#define ECS_ERR_MAX               256
#define ECS_METADATA_ENV          "ECS_CONTAINER_METADATA_URI_V4"
#define ECS_DEFAULT_CLUSTER       "default"
#define ECS_FETCH_DEFAULT_TIMEOUT 1000    /* ms per attempt when the caller passes 0 */
#define ECS_FETCH_ATTEMPTS        3       /* the first try and two retries */
#define ECS_FETCH_RETRY_DELAY_MS  200     /* before the first retry; doubled before the next */
#define ECS_FETCH_RETRY_MAX_MS    2000    /* the longest pause between two attempts */
#define ECS_IDENTITY_BUDGET_MS    20000   /* how long the daemon keeps trying at start */
#define ECS_FETCH_MAX_BODY        1048576 /* bytes of the /task document */
#define ECS_NAME_MAX              255     /* cluster and family names (ECS's own limit) */
#define ECS_STRING_MAX            1024    /* any other string, as REPORT_MAX_STRING */

/** The agent's identity. Every string is owned by the struct (ecs_identity_dispose()). */
typedef struct {
	char *id;       /* the agent id: the task ARN, or HOSTNAME/ROLE outside ECS */
	char *cluster;  /* the cluster's short name, never an ARN */
	char *family;   /* the task definition family; NULL outside ECS */
	char *revision; /* the task definition revision, decimal digits; NULL outside ECS */
	char *az;       /* the availability zone; NULL when unknown */
	char *address;  /* the task's own IPv4 address (awsvpc); NULL for none */
} ecs_identity_t;

/**
 * Parses and validates the task metadata document (`len` bytes, not
 * necessarily NUL-terminated) field by field:
 *   Cluster           required; a name or an ARN
 *                     (arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME), kept as
 *                     NAME: 1 to 255 letters, digits, hyphens or underscores
 *   TaskARN           required; arn:PARTITION:ecs:REGION:ACCOUNT:task/..., the id
 *   Family            required; 1 to 255 letters, digits, hyphens or underscores
 *   Revision          required; a positive decimal integer (string or number)
 *   AvailabilityZone  optional; lower-case letters, digits and hyphens
 *   Containers        optional; the address is IPv4Addresses[0] of the first
 *                     network whose NetworkMode is "awsvpc", containers in order
 *                     (Containers[].Networks[]); none such: no address
 * Fills *out (whose previous contents are overwritten, not freed) and returns 0;
 * or returns -EINVAL with a message naming the field in `err` (-ENOMEM when out
 * of memory), *out then holding no strings. `err` may be NULL.
 */
int ecs_identity_parse(const char *json, size_t len, ecs_identity_t *out, char *err, size_t errlen);

/**
 * GETs `base_uri` + "/task" (base_uri: the value of ECS_CONTAINER_METADATA_URI_V4,
 * plain http) with libcurl's easy interface and parses the document with
 * ecs_identity_parse(). Blocks: meant for the start, before the loop runs. Each
 * attempt is limited to `timeout_ms` (0: ECS_FETCH_DEFAULT_TIMEOUT); connection
 * errors, timeouts, 429 and 5xx are retried twice after a pause
 * (ECS_FETCH_RETRY_DELAY_MS, then twice that); other statuses and bad documents
 * are not. No proxy is used and no redirect followed. The caller has called
 * curl_global_init(). Returns 0 with *out filled (ecs_identity_dispose()), or,
 * with a message in `err` naming the URL: -EINVAL (bad base_uri, or the document
 * is invalid), -ETIMEDOUT, -ECONNREFUSED, -EIO (other transport errors), -ENOENT
 * (404), -EPROTO (other status than 200), -EFBIG (a body over
 * ECS_FETCH_MAX_BODY bytes), -ENOMEM. *out holds no strings on failure.
 */
int ecs_identity_fetch(const char *base_uri, long timeout_ms, ecs_identity_t *out, char *err,
                       size_t errlen);

/**
 * As ecs_identity_fetch(), but a failure that may pass (connection errors,
 * timeouts, 429, 5xx) is retried beyond ECS_FETCH_ATTEMPTS for as long as
 * `budget_ms` allows (pauses doubling up to ECS_FETCH_RETRY_MAX_MS; the last
 * attempt starts before the budget is spent, and may run `timeout_ms` past it):
 * a task's metadata endpoint that is not up yet at the container's start.
 * `budget_ms` <= 0 gives ecs_identity_fetch(). The message then says how many
 * attempts were made, and over how long.
 */
int ecs_identity_fetch_for(const char *base_uri, long timeout_ms, long budget_ms,
                           ecs_identity_t *out, char *err, size_t errlen);

/**
 * The identity outside ECS: id "HOSTNAME/ROLE", cluster "default", no family,
 * revision, zone or address. `role` must be non-empty. Fills *out (previous
 * contents overwritten, not freed) and returns 0; or -EINVAL (empty role),
 * -errno of gethostname(), -ENOMEM, with a message in `err`.
 */
int ecs_identity_default(const char *role, ecs_identity_t *out, char *err, size_t errlen);

/**
 * Applies the flags: each non-NULL argument replaces its field (--agent-id,
 * --cluster, --agent-address). `cluster` may be a name or a cluster ARN and is
 * validated as in the document; `agent_id` must be a non-empty string of at most
 * ECS_STRING_MAX bytes; `address` an IPv4 or IPv6 address. Returns 0; or
 * -EINVAL naming the flag in `err`, or -ENOMEM, `id` then unchanged.
 */
int ecs_identity_override(ecs_identity_t *id, const char *agent_id, const char *cluster,
                          const char *address, char *err, size_t errlen);

/** Frees every string and sets them to NULL. Safe on a zeroed or disposed identity. */
void ecs_identity_dispose(ecs_identity_t *id);

#endif
