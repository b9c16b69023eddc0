# Bilancia image: the static binary and a CA bundle, FROM scratch, because
# no base image can be pulled where it is built. scripts/docker-build puts
# both in dist/ first, then builds this.
#
# scratch has no shell or time zone data: the binary must not need them.
# The CA bundle is the build host's, where Go's TLS looks for it, so that a
# role can reach a broker with a publicly signed certificate (a private CA
# is passed with --tls-ca, as anywhere).
FROM scratch

COPY dist/bilancia /bilancia
COPY dist/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

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
