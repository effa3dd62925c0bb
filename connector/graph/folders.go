package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

type mailFolder struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Total       int    `json:"totalItemCount"`
	Unread      int    `json:"unreadItemCount"`
}

// isInbox reports whether a folder name means the inbox.
func isInbox(name string) bool { return name == "" || strings.EqualFold(name, "inbox") }

// folderID resolves a folder name: "" and "inbox" are the well-known inbox;
// other names are display names of top-level folders (children of
// msgfolderroot), created when create is set and they are missing.
func (s *session) folderID(ctx context.Context, name string, create bool) (string, error) {
	if isInbox(name) {
		return "inbox", nil
	}
	key := strings.ToLower(name)
	if id, ok := s.folders[key]; ok {
		return id, nil
	}
	id, err := s.m.findFolder(ctx, name)
	if err == nil && id == "" && create {
		id, err = s.m.createFolder(ctx, name)
	}
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound,
			fmt.Errorf("graph: the mailbox has no top-level folder %q", name))
	}
	if s.folders == nil {
		s.folders = map[string]string{}
	}
	s.folders[key] = id
	return id, nil
}

// findFolder returns the id of the top-level folder with that display name, or "".
func (m *mailbox) findFolder(ctx context.Context, name string) (string, error) {
	q := url.Values{"$filter": {"displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"}}
	var list struct {
		Value []mailFolder `json:"value"`
	}
	if err := m.doJSON(ctx, call{op: "folder", method: http.MethodGet, url: m.url(m.user+"/mailFolders", q), about: aboutMailbox}, &list); err != nil {
		return "", err
	}
	for _, f := range list.Value {
		if strings.EqualFold(f.DisplayName, name) && f.ID != "" {
			return f.ID, nil
		}
	}
	return "", nil
}

// createFolder creates a top-level folder; one created meanwhile by someone
// else (409 ErrorFolderExists) is looked up again.
func (m *mailbox) createFolder(ctx context.Context, name string) (string, error) {
	body, _ := json.Marshal(map[string]string{"displayName": name})
	var f mailFolder
	err := m.doJSON(ctx, call{op: "folder", method: http.MethodPost, url: m.url(m.user+"/mailFolders", nil), body: body,
		contentType: "application/json", about: aboutMailbox}, &f)
	var ge *graphError
	if errors.As(err, &ge) && (ge.Status == http.StatusConflict || strings.EqualFold(ge.Code, "ErrorFolderExists")) {
		id, err := m.findFolder(ctx, name)
		if err == nil && id == "" {
			err = connector.Error("folder", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCommandFailed,
				fmt.Errorf("graph: folder %q exists but cannot be found: %w", name, ge))
		}
		return id, err
	}
	if err != nil {
		return "", err
	}
	if f.ID == "" {
		return "", connector.Error("folder", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("graph: the created folder has no id"))
	}
	m.c.log.Info("graph: created folder", "mailbox", m.target.MailboxID, "folder", name)
	return f.ID, nil
}

// Delete implements serversync.IncomingSession: Graph moves the message to
// Deleted Items. A message already gone counts as deleted.
func (s *session) Delete(ctx context.Context, folder, ref string) error {
	if ref == "" {
		return connector.Error("delete", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, errors.New("graph: no message id"))
	}
	err := s.m.doJSON(ctx, call{op: "delete", method: http.MethodDelete, url: s.m.url(s.m.user+"/messages/"+url.PathEscape(ref), nil),
		messages: true, about: aboutMessage}, nil)
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) && ce.Code == serversync.CodeBadRef {
		return nil
	}
	return err
}

// Move implements serversync.FolderSession: the message moves to the top-level
// folder toFolder, created when missing.
func (s *session) Move(ctx context.Context, folder, ref, toFolder string) error {
	if ref == "" {
		return connector.Error("move", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, errors.New("graph: no message id"))
	}
	dest, err := s.folderID(ctx, toFolder, true)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"destinationId": dest})
	return s.m.doJSON(ctx, call{op: "move", method: http.MethodPost, url: s.m.url(s.m.user+"/messages/"+url.PathEscape(ref)+"/move", nil),
		body: body, contentType: "application/json", messages: true, about: aboutMessage}, nil)
}

// Append implements serversync.FolderSession: the MIME message is created in
// folder (created when missing). Graph sets the received time itself.
func (s *session) Append(ctx context.Context, folder string, received time.Time, msg io.Reader, size int64) error {
	dest, err := s.folderID(ctx, folder, true)
	if err != nil {
		return err
	}
	body, err := encodeMIME("append", msg, s.m.c.opts.MaxMessageBytes)
	if err != nil {
		return err
	}
	return s.m.doJSON(ctx, call{op: "append", method: http.MethodPost, url: s.m.url(s.m.user+"/mailFolders/"+url.PathEscape(dest)+"/messages", nil),
		body: body, contentType: "text/plain", messages: true, about: aboutFolder}, nil)
}

// encodeMIME reads a message (at most limit bytes) and returns it base64-encoded.
func encodeMIME(op string, msg io.Reader, limit int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(msg, limit+1))
	if err != nil {
		return nil, fmt.Errorf("graph: read the message: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, connector.Error(op, serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge,
			fmt.Errorf("graph: the message is over %d bytes", limit))
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	return out, nil
}
