#!/bin/sh
# Prepare MinIO for Trainyard, idempotently: the three buckets (docs/storage.md) and a MinIO
# user limited to them, so Airflow and the trainers never hold the root credentials.
# Run by docker-compose.yml's init-minio service; safe to run again on every `up`.
#
# Env: MINIO_URL (http://minio:9000), MINIO_ROOT_USER, MINIO_ROOT_PASSWORD,
#      TRAINYARD_MINIO_ACCESS_KEY, TRAINYARD_MINIO_SECRET_KEY (the user to create),
#      TRAINYARD_MINIO_BUCKET_PREFIX (default trainyard),
#      TRAINYARD_MINIO_OBJECT_LOCK_DAYS (default 0; > 0 creates the models bucket with object lock).
set -eu

: "${MINIO_URL:?MINIO_URL is not set}"
: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is not set}"
: "${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD is not set}"
: "${TRAINYARD_MINIO_ACCESS_KEY:?TRAINYARD_MINIO_ACCESS_KEY is not set}"
: "${TRAINYARD_MINIO_SECRET_KEY:?TRAINYARD_MINIO_SECRET_KEY is not set}"
prefix="${TRAINYARD_MINIO_BUCKET_PREFIX:-trainyard}"
lock_days="${TRAINYARD_MINIO_OBJECT_LOCK_DAYS:-0}"
mc="${MC:-mc}"

case "$MINIO_URL" in
  http://*) scheme=http; hostport="${MINIO_URL#http://}" ;;
  https://*) scheme=https; hostport="${MINIO_URL#https://}" ;;
  *) echo "init-buckets: MINIO_URL must start with http:// or https://, got '$MINIO_URL'" >&2; exit 2 ;;
esac
# The root credentials reach mc through its environment, not its command line (`ps` shows that).
# They must be URL-safe (letters, digits, - _ .); .env.example says so.
export MC_HOST_trainyard="$scheme://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@${hostport%/}"
export MC_CONFIG_DIR="${MC_CONFIG_DIR:-$(mktemp -d)}"

"$mc" --quiet ready trainyard >/dev/null

for area in datasets runs; do
  "$mc" --quiet mb --ignore-existing "trainyard/$prefix-$area"
done
# Registered models are versioned always; object lock (which implies versioning) can only be
# switched on when a bucket is created, so it is decided here, before the store first writes.
if [ "$lock_days" -gt 0 ]; then
  "$mc" --quiet mb --ignore-existing --with-lock "trainyard/$prefix-models"
else
  "$mc" --quiet mb --ignore-existing "trainyard/$prefix-models"
  "$mc" --quiet version enable "trainyard/$prefix-models" >/dev/null
fi
echo "init-buckets: buckets $prefix-datasets, $prefix-runs, $prefix-models (versioned) are ready"

# The permissions docs/storage.md lists for the store, on the prefix's buckets only.
policy_file="$(mktemp)"
trap 'rm -f "$policy_file"' EXIT
cat >"$policy_file" <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads", "s3:GetBucketVersioning", "s3:PutBucketVersioning",
        "s3:GetBucketObjectLockConfiguration"
      ],
      "Resource": ["arn:aws:s3:::$prefix-datasets", "arn:aws:s3:::$prefix-runs", "arn:aws:s3:::$prefix-models"]
    },
    {
      "Effect": "Allow",
      "Action": [
        "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
        "s3:PutObjectRetention", "s3:GetObjectRetention"
      ],
      "Resource": ["arn:aws:s3:::$prefix-datasets/*", "arn:aws:s3:::$prefix-runs/*", "arn:aws:s3:::$prefix-models/*"]
    }
  ]
}
POLICY
policy="$prefix-store"
"$mc" --quiet admin policy create trainyard "$policy" "$policy_file" >/dev/null
# mc echoes the access key; it is a credential too, so its output is dropped.
# `--`: a generated secret may begin with '-' (1 in 64 for token_urlsafe), which mc would take for a flag.
"$mc" --quiet admin user add -- trainyard "$TRAINYARD_MINIO_ACCESS_KEY" "$TRAINYARD_MINIO_SECRET_KEY" >/dev/null
"$mc" --quiet admin policy attach trainyard "$policy" --user "$TRAINYARD_MINIO_ACCESS_KEY" >/dev/null
echo "init-buckets: the store's MinIO user has policy $policy (its own buckets only)"
