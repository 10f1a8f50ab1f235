# HAProxy 2.6 (Debian 12 package, same config as bench/load.sh) as the peer reverse proxy for
# bench/crank.yml: GET /bench/m/<path> -> http://$UPSTREAM/<path>. Listens on $LISTEN.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/bench
COPY haproxy.cfg.in /etc/haproxy/bench/haproxy.cfg.in
ENV LISTEN=0.0.0.0:8082 UPSTREAM=127.0.0.1:8080
EXPOSE 8082
CMD ["/bin/sh", "-c", "sed -e \"s|@PREFIX@|/var/lib/bench|g\" -e \"s|@LISTEN@|$LISTEN|g\" -e \"s|@UPSTREAM@|$UPSTREAM|g\" /etc/haproxy/bench/haproxy.cfg.in > /var/lib/bench/haproxy.cfg && exec haproxy -db -f /var/lib/bench/haproxy.cfg"]
