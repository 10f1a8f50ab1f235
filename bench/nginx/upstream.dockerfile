# Benchmark upstream for bench/crank.yml: nginx (Debian 12 package, same as bench/load.sh uses)
# answering GET /v1/ping with a ~200-byte JSON body. Listens on $LISTEN (default 0.0.0.0:8080);
# crank runs containers with --network host.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/bench
COPY upstream.conf.in /etc/nginx/bench/upstream.conf.in
ENV LISTEN=0.0.0.0:8080
EXPOSE 8080
CMD ["/bin/sh", "-c", "sed -e \"s|@PREFIX@|/var/lib/bench|g\" -e \"s|@LISTEN@|$LISTEN|g\" -e \"s|@ERROR_LOG@|stderr|g\" /etc/nginx/bench/upstream.conf.in > /var/lib/bench/nginx.conf && exec nginx -p /var/lib/bench -e stderr -c /var/lib/bench/nginx.conf"]
