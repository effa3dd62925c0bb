package mailparse

import (
	"encoding/base64"
	"strings"
	"testing"
)

// benchMessage is a typical business email of about 15 KB: a text and an HTML
// body in quoted-printable, and a 10 KB base64 attachment.
func benchMessage() string {
	var b strings.Builder
	b.WriteString(crlf(`Return-Path: <alice@example.com>
Received: from mail.example.com (mail.example.com [192.0.2.1])
	by mx.contoso.com with ESMTPS id 123; Mon, 2 Jan 2006 15:04:07 -0700
From: "Alice Example" <alice@example.com>
To: Bob <bob@contoso.com>, carol@contoso.com
Cc: "Doe, Dan" <dan@contoso.com>
Subject: =?UTF-8?Q?Quarterly_numbers_=E2=80=93_Q3?=
Date: Mon, 2 Jan 2006 15:04:05 -0700
Message-ID: <CAF=abc123@mail.example.com>
In-Reply-To: <prev@contoso.com>
References: <root@contoso.com> <prev@contoso.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed"

--mixed
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

`))
	for range 20 {
		b.WriteString("Hi Bob, the numbers for the quarter are attached =E2=80=93 see the sheet.=\r\n Thanks.\r\n")
	}
	b.WriteString("--alt\r\nContent-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	for range 20 {
		b.WriteString("<p style=3D\"margin:0\">Hi Bob, the numbers for the quarter are attached.</p>\r\n")
	}
	b.WriteString("--alt--\r\n\r\n--mixed\r\nContent-Type: application/vnd.ms-excel; name=\"q3.xls\"\r\n" +
		"Content-Disposition: attachment; filename=\"q3.xls\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	data := make([]byte, 10<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--mixed--\r\n")
	return b.String()
}

func BenchmarkParse(b *testing.B) {
	msg := benchMessage()
	opts := &Options{MaxAttachmentSize: 5 << 20} // the org default

	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(strings.NewReader(msg), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBytes parses the same message held in memory, as the incoming
// pipeline does: no copy of it is buffered for Raw.
func BenchmarkParseBytes(b *testing.B) {
	msg := []byte(benchMessage())
	opts := &Options{MaxAttachmentSize: 5 << 20}

	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(msg, opts); err != nil {
			b.Fatal(err)
		}
	}
}
