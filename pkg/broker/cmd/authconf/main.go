// Command authconf prints the authorization block of Postback's nats-server
// configuration (deploy/nats/auth.conf) from pkg/broker's permission table;
// with -yaml, the users list of charts/nats-values.yaml instead.
package main

import (
	"flag"
	"fmt"

	"github.com/postback-dev/postback/pkg/broker"
)

func main() {
	yaml := flag.Bool("yaml", false, "print the users list of charts/nats-values.yaml")
	flag.Parse()
	if *yaml {
		fmt.Print(broker.AuthYAML())
		return
	}
	fmt.Print(broker.AuthConf())
}
