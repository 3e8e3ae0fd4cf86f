package teamsapp

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"testing"
)

func TestPackageManifestAndIcons(t *testing.T) {
	pkg, err := Package(Options{AppID: "7C1E4F0A-5B2D-4C39-8E61-2F9A0D3B4C5E", ClientID: "0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d",
		TabURL: "https://voice.example.net/phoneapp/", ExtraDomains: []string{"cdn.example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	var m map[string]any
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if m["manifestVersion"] != "1.17" || m["id"] != "7c1e4f0a-5b2d-4c39-8e61-2f9a0d3b4c5e" || m["accentColor"] != "#3558d6" {
		t.Fatalf("manifest: %v", m)
	}
	tabs := m["staticTabs"].([]any)
	tab := tabs[0].(map[string]any)
	if tab["contentUrl"] != "https://voice.example.net/phoneapp/" || tab["scopes"].([]any)[0] != "personal" {
		t.Fatalf("tab: %v", tab)
	}
	wai := m["webApplicationInfo"].(map[string]any)
	if wai["id"] != "0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d" || wai["resource"] != "api://voice.example.net/0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d" {
		t.Fatalf("webApplicationInfo: %v", wai)
	}
	if d := m["validDomains"].([]any); len(d) != 2 || d[0] != "voice.example.net" {
		t.Fatalf("validDomains: %v", d)
	}
	name := m["name"].(map[string]any)
	if name["short"] == name["full"] {
		t.Fatalf("short and full names must differ: %v", name)
	}
	for file, size := range map[string]int{"color.png": 192, "outline.png": 32} {
		img, err := png.Decode(bytes.NewReader(files[file]))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Fatalf("%s is %v; want %dx%d", file, b, size, size)
		}
		// The outline icon is white on transparency: corners transparent,
		// the centre dot opaque white.
		if file == "outline.png" {
			if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
				t.Fatal("outline corner not transparent")
			}
			if r, g, b, a := img.At(16, 16).RGBA(); r != 0xffff || g != 0xffff || b != 0xffff || a != 0xffff {
				t.Fatal("outline centre not opaque white")
			}
		}
	}
	// The same options give the same bytes (the catalog sees no change).
	again, _ := Package(Options{AppID: "7C1E4F0A-5B2D-4C39-8E61-2F9A0D3B4C5E", ClientID: "0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d",
		TabURL: "https://voice.example.net/phoneapp/", ExtraDomains: []string{"cdn.example.net"}})
	if !bytes.Equal(pkg, again) {
		t.Fatal("package bytes differ between builds")
	}
}

func TestManifestRefusesBadOptions(t *testing.T) {
	ok := Options{AppID: "7c1e4f0a-5b2d-4c39-8e61-2f9a0d3b4c5e", ClientID: "0b7d9e41-2c5a-4f83-9d16-7e8f9a0b1c2d", TabURL: "https://x.example/"}
	for name, mut := range map[string]func(*Options){
		"app id":    func(o *Options) { o.AppID = "phone" },
		"client id": func(o *Options) { o.ClientID = "" },
		"tab url":   func(o *Options) { o.TabURL = "/relative" },
		"version":   func(o *Options) { o.Version = "1.0" },
		"colour":    func(o *Options) { o.AccentColor = "blue" },
		"name":      func(o *Options) { o.ShortName = "A name far longer than thirty characters" },
	} {
		o := ok
		mut(&o)
		if _, err := BuildManifest(o); err == nil {
			t.Errorf("%s: bad option accepted", name)
		}
	}
}
