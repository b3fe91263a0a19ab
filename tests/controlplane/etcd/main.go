// Command etcd is upstream's etcd main (etcdmain.Main), built from the
// published server module so that tests need no prebuilt binaries.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
