module github.com/postback-dev/postback/deploy/healthcheck

go 1.26.7
