package main

// runnel user add|del|list: the users file (package users). Passwords come
// from a prompt on the terminal (not echoed, asked twice) or from the
// first line of stdin; never from the command line, where `ps` shows them.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runnel/runnel/ingest/users"
)

// envUsersFile names the environment variable that gives --users-file.
const envUsersFile = "RUNNEL_USERS_FILE"

func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	top := command{name: "user", args: "add|del|list", summary: "Manage the accounts of the users file (serve's users-file)."}
	if len(args) == 0 {
		return top.fail(stderr, usageErrorf("missing subcommand: add, del or list"))
	}
	sub, rest := args[0], args[1:]
	var c command
	switch sub {
	case "add":
		c = command{name: "user add", args: "NAME", summary: "Add an account, or set its password: asked on the terminal (twice, not echoed), else read from the first line of stdin."}
	case "del", "delete", "rm":
		c = command{name: "user del", args: "NAME", summary: "Remove an account."}
	case "list", "ls":
		c = command{name: "user list", summary: "List the accounts (names only)."}
	case "-h", "--help", "help":
		top.printUsage(stdout, top.newFlagSet())
		return exitOK
	default:
		return top.fail(stderr, usageErrorf("unknown subcommand %q: want add, del or list", sub))
	}
	fs := c.newFlagSet()
	file := fs.String("users-file", os.Getenv(envUsersFile), "the users file (default $"+envUsersFile+")")
	if done, code := c.parse(fs, rest, stdout, stderr); done {
		return code
	}
	if *file == "" {
		return c.fail(stderr, usageErrorf("--users-file is required (or $%s)", envUsersFile))
	}
	f, err := users.ReadFile(*file)
	if err != nil {
		return c.fail(stderr, err)
	}
	switch sub {
	case "list", "ls":
		if fs.NArg() != 0 {
			return c.fail(stderr, usageErrorf("list takes no arguments"))
		}
		for _, e := range f.Users {
			fmt.Fprintln(stdout, e.Name)
		}
		return exitOK
	}
	if fs.NArg() != 1 {
		return c.fail(stderr, usageErrorf("want exactly one user NAME, got %d arguments", fs.NArg()))
	}
	name := fs.Arg(0)
	if sub != "add" {
		if !f.Delete(name) {
			return c.fail(stderr, fmt.Errorf("no user %q in %s", name, *file))
		}
		if err := users.WriteFile(*file, f); err != nil {
			return c.fail(stderr, err)
		}
		fmt.Fprintf(stderr, "user %s removed from %s (runnel serve applies it on SIGHUP: systemctl reload runnel)\n", name, *file)
		return exitOK
	}
	if err := users.ValidName(name); err != nil {
		return c.fail(stderr, usageErrorf("%v", err))
	}
	pass, err := readPassword(stdin, stderr)
	if err != nil {
		return c.fail(stderr, err)
	}
	e, err := users.NewEntry(name, pass)
	if err != nil {
		return c.fail(stderr, err)
	}
	f.Set(e)
	if err := users.WriteFile(*file, f); err != nil {
		return c.fail(stderr, err)
	}
	fmt.Fprintf(stderr, "user %s written to %s (bcrypt, SCRAM-SHA-256, SCRAM-SHA-512; runnel serve applies it on SIGHUP: systemctl reload runnel)\n", name, *file)
	return exitOK
}

// readPassword prompts on a terminal (twice, echo off) or reads the first
// line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok {
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			noEcho := *t
			noEcho.Lflag &^= unix.ECHO
			noEcho.Lflag |= unix.ICANON | unix.ECHONL
			if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &noEcho); err != nil {
				return "", err
			}
			defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
			r := bufio.NewReader(f)
			fmt.Fprint(stderr, "Password: ")
			p1, err := readLine(r)
			if err != nil {
				return "", err
			}
			fmt.Fprint(stderr, "Retype password: ")
			p2, err := readLine(r)
			if err != nil {
				return "", err
			}
			if p1 != p2 {
				return "", errors.New("the passwords differ")
			}
			return checkPassword(p1)
		}
	}
	p, err := readLine(bufio.NewReader(stdin))
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %v", err)
	}
	return checkPassword(p)
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func checkPassword(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty password")
	}
	return p, nil
}
