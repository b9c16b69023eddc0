# Bilancia image: the static binary alone, FROM scratch, because no base image
# can be pulled where it is built. Build the binary on the host first:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o dist/bilancia ./cmd/bilancia
#   docker build -t bilancia .
#
# scratch has no shell, CA certificates or time zone data: the binary must not
# need them (TLS to NATS with a private CA passes the CA file explicitly).
FROM scratch

COPY dist/bilancia /bilancia

# Logs (loadbalancer.log) go to the working directory unless --log says
# otherwise. scratch has no mkdir or chown, so /data is an empty directory
# that scripts/docker-build leaves in dist/, copied in owned by the user the
# process runs as: an unprivileged one (65532, "nonroot" by convention). A
# new named volume on /data takes that ownership; a host directory mounted
# there must be writable by 65532 (or pass --user).
COPY --chown=65532:65532 dist/data /data
# /auth likewise, for broker --auth /auth on a named volume (compose.yaml):
# the broker writes the credentials there as that user.
COPY --chown=65532:65532 dist/auth /auth
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]

# Clients, cluster routes, monitoring (/varz /routez /connz).
EXPOSE 4222 6222 8222

ENTRYPOINT ["/bilancia"]
