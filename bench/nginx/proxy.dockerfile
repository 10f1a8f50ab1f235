# nginx as the peer reverse proxy for bench/crank.yml (Debian 12 package, same config as
# bench/load.sh): GET /bench/m/<path> -> http://$UPSTREAM/<path>. Listens on $LISTEN.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/bench
COPY proxy.conf.in /etc/nginx/bench/proxy.conf.in
ENV LISTEN=0.0.0.0:8081 UPSTREAM=127.0.0.1:8080
EXPOSE 8081
CMD ["/bin/sh", "-c", "sed -e \"s|@PREFIX@|/var/lib/bench|g\" -e \"s|@LISTEN@|$LISTEN|g\" -e \"s|@UPSTREAM@|$UPSTREAM|g\" -e \"s|@ERROR_LOG@|stderr|g\" /etc/nginx/bench/proxy.conf.in > /var/lib/bench/nginx.conf && exec nginx -p /var/lib/bench -e stderr -c /var/lib/bench/nginx.conf"]
