package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	chat "github.com/chatd/chat"
)

// The admin commands that match the /manage/ pages: deactivate and
// reactivate accounts, grant and revoke administrator rights, rename and
// delete courses, and make, list and revoke API keys.

// setActive runs deactivate and reactivate. The store records the
// revocation that closes the user's sockets on every server.
func (a *adminEnv) setActive(ctx context.Context, name string, args []string) error {
	pos, err := a.parse(ctx, a.newFlagSet(name), args, 1, false)
	if err != nil {
		return err
	}
	u, err := a.user(ctx, pos[0])
	if err != nil {
		return err
	}
	active := name == "reactivate"
	if u.Deactivated != active {
		if active {
			fmt.Fprintf(a.stdout, "%q is already active\n", u.Username)
		} else {
			fmt.Fprintf(a.stdout, "%q is already deactivated\n", u.Username)
		}
		return nil
	}
	if err := a.store.SetUserActive(ctx, u.ID, active); err != nil {
		return err
	}
	if active {
		fmt.Fprintf(a.stdout, "reactivated %q: they may sign in again\n", u.Username)
	} else {
		fmt.Fprintf(a.stdout, "deactivated %q: their sessions are ended and their open sockets close on every server\n", u.Username)
	}
	return nil
}

// setAdmin runs grantadmin and revokeadmin.
func (a *adminEnv) setAdmin(ctx context.Context, name string, args []string) error {
	pos, err := a.parse(ctx, a.newFlagSet(name), args, 1, false)
	if err != nil {
		return err
	}
	u, err := a.user(ctx, pos[0])
	if err != nil {
		return err
	}
	admin := name == "grantadmin"
	if err := a.store.SetUserAdmin(ctx, u.ID, admin); err != nil {
		return err
	}
	if admin {
		fmt.Fprintf(a.stdout, "%q is an administrator: they see /manage/\n", u.Username)
	} else {
		fmt.Fprintf(a.stdout, "%q is no longer an administrator\n", u.Username)
	}
	return nil
}

func (a *adminEnv) renameCourse(ctx context.Context, args []string) error {
	pos, err := a.parse(ctx, a.newFlagSet("renamecourse"), args, 2, true)
	if err != nil {
		return err
	}
	c, err := a.course(ctx, pos[0])
	if err != nil {
		return err
	}
	title := strings.TrimSpace(strings.Join(pos[1:], " "))
	if err := a.store.RenameCourse(ctx, c.ID, title); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "renamed course %d from %q to %q\n", c.ID, c.Title, title)
	return nil
}

func (a *adminEnv) deleteCourse(ctx context.Context, args []string) error {
	pos, err := a.parse(ctx, a.newFlagSet("deletecourse"), args, 1, false)
	if err != nil {
		return err
	}
	c, err := a.course(ctx, pos[0])
	if err != nil {
		return err
	}
	if err := a.store.DeleteCourse(ctx, c.ID); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "deleted course %d (%s) with its enrollments and chat history\n", c.ID, c.Title)
	return nil
}

// defaultKeyRooms is what a key may post to without --rooms: the public
// rooms. Course and private rooms must be granted by name.
const defaultKeyRooms = "chat:*"

func (a *adminEnv) createKey(ctx context.Context, args []string) error {
	fs := a.newFlagSet("createkey")
	name := fs.String("name", "", "the key's name, unique among keys not revoked (required)")
	rooms := fs.String("rooms", defaultKeyRooms, "comma-separated room patterns the key may post to")
	bot := fs.String("bot", "", "the bot it posts as: frames show bot:BOT (default: the key's name)")
	if _, err := a.parse(ctx, fs, args, 0, false); err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("--name NAME is required; usage: chatd createkey %s", adminHelp["createkey"].args)
	}
	k := &chat.APIKey{Name: *name, Bot: *bot, Rooms: *rooms}
	if k.Bot == "" {
		k.Bot = k.Name
	}
	if err := a.store.CreateAPIKey(ctx, k); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "created API key %q (id %d): posts as %s to %s\n", k.Name, k.ID, chat.BotUser(k.Bot), k.Rooms)
	fmt.Fprintf(a.stdout, "Its secret is shown only now; store it where the program that posts can read it:\n\n%s\n", k.Secret)
	return nil
}

func (a *adminEnv) listKeys(ctx context.Context, args []string) error {
	if _, err := a.parse(ctx, a.newFlagSet("listkeys"), args, 0, false); err != nil {
		return err
	}
	keys, err := a.store.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		fmt.Fprintln(a.stdout, "no API keys yet (see chatd createkey -h)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPOSTS AS\tROOMS\tSECRET\tCREATED\tREVOKED")
	for _, k := range keys {
		revoked := "-"
		if k.Revoked() {
			revoked = k.RevokedAt.Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s…\t%s\t%s\n", k.ID, k.Name, chat.BotUser(k.Bot), k.Rooms, k.Prefix,
			k.CreatedAt.Format(time.DateTime), revoked)
	}
	return tw.Flush()
}

func (a *adminEnv) revokeKey(ctx context.Context, args []string) error {
	fs := a.newFlagSet("revokekey")
	id := fs.Int64("id", 0, "revoke the key with this id (see chatd listkeys) instead of naming it")
	pos, err := a.parse(ctx, fs, args, 0, true)
	if err != nil {
		return err
	}
	usage := "usage: chatd revokekey " + adminHelp["revokekey"].args
	switch {
	case len(pos) > 1 || len(pos) == 1 && *id != 0:
		return fmt.Errorf("name one key; %s", usage)
	case len(pos) == 0 && *id <= 0:
		return fmt.Errorf("missing arguments; %s", usage)
	}
	keys, err := a.store.ListAPIKeys(ctx)
	if err != nil {
		return err
	}
	var k *chat.APIKey
	for _, c := range keys {
		if !c.Revoked() && (*id != 0 && c.ID == *id || len(pos) == 1 && c.Name == pos[0]) {
			k = c
		}
	}
	if k == nil {
		what := "named " + strconv.Quote(strings.Join(pos, ""))
		if *id != 0 {
			what = "with id " + strconv.FormatInt(*id, 10)
		}
		return chat.Errorf(chat.ENOTFOUND, "no API key %s that is not revoked (see chatd listkeys)", what)
	}
	if err := a.store.RevokeAPIKey(ctx, k.ID); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "revoked API key %q (id %d): it no longer works\n", k.Name, k.ID)
	return nil
}
