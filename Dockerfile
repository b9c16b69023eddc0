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
# otherwise. The process runs as root: without a shell or BuildKit there is
# no way to make /data writable for another user. To run unprivileged, pass
# --user and mount a directory that user owns on /data.
WORKDIR /data
VOLUME ["/data"]

# Clients, cluster routes, monitoring (/varz /routez /connz).
EXPOSE 4222 6222 8222

ENTRYPOINT ["/bilancia"]
