# Sourced by http-ceiling.sh and http-ceiling-get.sh: nginx as this machine's HTTP ceiling.
# Debian's nginx-light, one worker and no master, answering every path and method with
# `return 200` and a GET-sized JSON body (the body small_db_server answers to a GET of the key
# "hello" holding "world", byte for byte).
#
# start_ceiling_nginx DIR PORT: writes DIR/nginx.conf, starts nginx pinned to CPU 0 on
# 127.0.0.1:PORT, and sets nginx_pid (the caller stops it with SIGQUIT).
start_ceiling_nginx() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
error_log $dir/error.log;
pid $dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 '{"key":"hello","value":"d29ybGQ=","encoding":"base64"}\n';
        }
    }
}
NGINX
    taskset -c 0 nginx -p "$dir" -c "$dir/nginx.conf" 2>"$dir/stderr" &
    nginx_pid=$!
}
