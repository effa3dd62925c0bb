package ews

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/connector"
)

// distinguished returns a DistinguishedFolderId ("inbox", "msgfolderroot",
// "sentitems"…), naming the delegated mailbox when the service account opens
// another user's mailbox.
func (m *mailbox) distinguished(id string) string {
	if m.delegate == "" {
		return `<t:DistinguishedFolderId Id="` + esc(id) + `"/>`
	}
	return `<t:DistinguishedFolderId Id="` + esc(id) + `"><t:Mailbox><t:EmailAddress>` + esc(m.delegate) +
		`</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>`
}

func folderID(id string) string { return `<t:FolderId Id="` + esc(id) + `"/>` }

// isInbox reports whether a folder name means the inbox.
func isInbox(name string) bool { return name == "" || strings.EqualFold(name, "inbox") }

// folderXML is the folder id element of a folder name: the inbox is
// distinguished; another name is a folder under msgfolderroot or the inbox,
// created under msgfolderroot when create is set and it is missing.
func (s *session) folderXML(ctx context.Context, name string, create bool) (string, error) {
	if isInbox(name) {
		return s.m.distinguished("inbox"), nil
	}
	if strings.EqualFold(name, "sentitems") || strings.EqualFold(name, "sent") || strings.EqualFold(name, "sent items") {
		return s.m.distinguished("sentitems"), nil
	}
	key := strings.ToLower(name)
	if id, ok := s.folders[key]; ok {
		return folderID(id), nil
	}
	id := ""
	var err error
	for _, parent := range []string{"msgfolderroot", "inbox"} {
		if id, err = s.m.findFolder(ctx, parent, name); err != nil || id != "" {
			break
		}
	}
	if err == nil && id == "" && create {
		id, err = s.m.createFolder(ctx, "msgfolderroot", name)
	}
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", connector.Error("fetch", serversync.ErrorPermanent, serversync.ScopeMailbox, serversync.CodeFolderNotFound,
			fmt.Errorf("ews: the mailbox has no folder %q", name))
	}
	if s.folders == nil {
		s.folders = map[string]string{}
	}
	s.folders[key] = id
	return folderID(id), nil
}

// findFolder returns the id of parent's child folder with that display name, or "".
func (m *mailbox) findFolder(ctx context.Context, parent, name string) (string, error) {
	body := `<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>` +
		`<t:FieldURI FieldURI="folder:DisplayName"/></t:AdditionalProperties></m:FolderShape>` +
		`<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURIOrConstant><t:Constant Value="` + esc(name) +
		`"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>` +
		`<m:ParentFolderIds>` + m.distinguished(parent) + `</m:ParentFolderIds></m:FindFolder>`
	msgs, status, err := m.call(ctx, "folder", aboutFolder, body, MaxReplyBytes)
	if err == nil {
		err = m.first("folder", aboutFolder, msgs, status)
	}
	if err != nil {
		return "", err
	}
	for _, f := range msgs[0].RootFolder.Folders.List {
		if strings.EqualFold(strings.TrimSpace(f.DisplayName), name) && f.FolderID.ID != "" {
			return f.FolderID.ID, nil
		}
	}
	return "", nil
}

// createFolder creates a folder under parent; one created meanwhile by someone
// else (ErrorFolderExists) is looked up again.
func (m *mailbox) createFolder(ctx context.Context, parent, name string) (string, error) {
	body := `<m:CreateFolder><m:ParentFolderId>` + m.distinguished(parent) + `</m:ParentFolderId><m:Folders><t:Folder>` +
		`<t:DisplayName>` + esc(name) + `</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>`
	msgs, status, err := m.call(ctx, "folder", aboutFolder, body, MaxReplyBytes)
	if err != nil {
		return "", err
	}
	if len(msgs) > 0 {
		if re := msgs[0].err(status); re != nil && re.is("ErrorFolderExists") {
			id, err := m.findFolder(ctx, parent, name)
			if err == nil && id == "" {
				err = connector.Error("folder", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeCommandFailed,
					fmt.Errorf("ews: folder %q exists but cannot be found: %w", name, re))
			}
			return id, err
		}
	}
	if err := m.first("folder", aboutFolder, msgs, status); err != nil {
		return "", err
	}
	if len(msgs[0].Folders.List) == 0 || msgs[0].Folders.List[0].FolderID.ID == "" {
		return "", connector.Error("folder", serversync.ErrorTransient, serversync.ScopeMailbox, serversync.CodeProtocolError,
			errors.New("ews: the created folder has no id"))
	}
	m.c.log.Info("ews: created folder", "mailbox", m.target.MailboxID, "folder", name)
	return msgs[0].Folders.List[0].FolderID.ID, nil
}

// folderInfo is what GetFolder says of a folder.
type folderInfo struct {
	Name          string
	Total, Unread int
}

// getFolder reads a distinguished folder of the mailbox.
func (m *mailbox) getFolder(ctx context.Context, op, id string) (folderInfo, error) {
	body := `<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>` +
		m.distinguished(id) + `</m:FolderIds></m:GetFolder>`
	msgs, status, err := m.call(ctx, op, aboutMailbox, body, MaxReplyBytes)
	if err == nil {
		err = m.first(op, aboutMailbox, msgs, status)
	}
	if err != nil {
		return folderInfo{}, err
	}
	var info folderInfo
	if list := msgs[0].Folders.List; len(list) > 0 {
		info.Name = strings.TrimSpace(list[0].DisplayName)
		info.Total, _ = strconv.Atoi(strings.TrimSpace(list[0].TotalCount))
		info.Unread, _ = strconv.Atoi(strings.TrimSpace(list[0].UnreadCount))
	}
	return info, nil
}

// Delete implements serversync.IncomingSession: the message moves to Deleted
// Items. A message already gone counts as deleted.
func (s *session) Delete(ctx context.Context, folder, ref string) error {
	if ref == "" {
		return connector.Error("delete", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, errors.New("ews: no item id"))
	}
	body := `<m:DeleteItem DeleteType="MoveToDeletedItems"><m:ItemIds><t:ItemId Id="` + esc(ref) + `"/></m:ItemIds></m:DeleteItem>`
	msgs, status, err := s.m.call(ctx, "delete", aboutMessage, body, MaxReplyBytes)
	if err == nil {
		err = s.m.first("delete", aboutMessage, msgs, status)
	}
	var ce *serversync.ConnectorError
	if errors.As(err, &ce) && ce.Code == serversync.CodeBadRef {
		return nil
	}
	return err
}

// Move implements serversync.FolderSession: the message moves to toFolder (a
// folder under msgfolderroot or the inbox, created under msgfolderroot when
// missing).
func (s *session) Move(ctx context.Context, folder, ref, toFolder string) error {
	if ref == "" {
		return connector.Error("move", serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeBadRef, errors.New("ews: no item id"))
	}
	dest, err := s.folderXML(ctx, toFolder, true)
	if err != nil {
		return err
	}
	body := `<m:MoveItem><m:ToFolderId>` + dest + `</m:ToFolderId><m:ItemIds><t:ItemId Id="` + esc(ref) + `"/></m:ItemIds></m:MoveItem>`
	msgs, status, err := s.m.call(ctx, "move", aboutMessage, body, MaxReplyBytes)
	if err == nil {
		err = s.m.first("move", aboutMessage, msgs, status)
	}
	return err
}

// Append implements serversync.FolderSession: CreateItem with SaveOnly stores
// the MIME message in folder (created when missing).
func (s *session) Append(ctx context.Context, folder string, received time.Time, msg io.Reader, size int64) error {
	dest, err := s.folderXML(ctx, folder, true)
	if err != nil {
		return err
	}
	mime, err := encodeMIME("append", msg, s.m.c.opts.MaxMessageBytes)
	if err != nil {
		return err
	}
	return s.m.createItem(ctx, "append", aboutFolder, "SaveOnly", dest, mime)
}

// createItem creates a message from its base64 MIME content.
func (m *mailbox) createItem(ctx context.Context, op string, about what, disposition, folderXML, mimeBase64 string) error {
	body := `<m:CreateItem MessageDisposition="` + disposition + `"><m:SavedItemFolderId>` + folderXML + `</m:SavedItemFolderId>` +
		`<m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">` + mimeBase64 + `</t:MimeContent></t:Message></m:Items></m:CreateItem>`
	msgs, status, err := m.call(ctx, op, about, body, MaxReplyBytes)
	if err == nil {
		err = m.first(op, about, msgs, status)
	}
	return err
}

// encodeMIME reads a message (at most limit bytes) and returns it base64-encoded.
func encodeMIME(op string, msg io.Reader, limit int64) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(msg, limit+1))
	if err != nil {
		return "", fmt.Errorf("ews: read the message: %w", err)
	}
	if int64(len(raw)) > limit {
		return "", connector.Error(op, serversync.ErrorPermanent, serversync.ScopeItem, serversync.CodeMessageTooLarge,
			fmt.Errorf("ews: the message is over %d bytes", limit))
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}
