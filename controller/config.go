package main

import (
	"flag"

	"github.com/peterbourgon/ff/v3"
)

// EnvPrefix names the environment variables that stand for flags: every
// flag can also be given as CUNXIANG_<NAME> (upper case, - as _), e.g.
// --public-url as CUNXIANG_PUBLIC_URL. The packaged service reads them from
// /etc/cunxiang/controller.env; a flag on the command line wins.
const EnvPrefix = "CUNXIANG"

// parseWithEnv parses args, then sets every flag not given there from its
// environment variable.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	return ff.Parse(fs, args, ff.WithEnvVarPrefix(EnvPrefix))
}
