module github.com/convead/chat-server

go 1.26.8

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	go.etcd.io/bbolt v1.4.3
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
