package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"hardbound/admin"
	"hardbound/admin/client"
	"hardbound/admin/client/table"
)

// clientFlags are the persistent flags of the admin API's commands.
type clientFlags struct {
	client.Settings
	json bool
}

// client builds the admin API client: each setting is the flag, else its
// environment variable, else a default file (client.Settings.Resolve).
func (cf *clientFlags) client(e *env) (*client.Client, error) {
	return client.New(cf.Settings.Resolve(e.getenv))
}

// output prints v as JSON with --json, else the rows of table.
func (cf *clientFlags) output(e *env, v any, rows func(io.Writer)) error {
	return table.Print(e.stdout, cf.json, v, rows)
}

// show makes one API call with a client built from the flags and prints
// its answer with rows (or as JSON).
func show[T any](cmd *cobra.Command, e *env, cf *clientFlags, call func(context.Context, *client.Client) (T, error), rows func(io.Writer, T)) error {
	c, err := cf.client(e)
	if err != nil {
		return err
	}
	v, err := call(cmd.Context(), c)
	if err != nil {
		return err
	}
	return cf.output(e, v, func(w io.Writer) { rows(w, v) })
}

// page prints a page of a listing with the rows of its items.
func page[T any](rows func(io.Writer, []T)) func(io.Writer, admin.List[T]) {
	return func(w io.Writer, l admin.List[T]) { table.List(w, l, rows) }
}
