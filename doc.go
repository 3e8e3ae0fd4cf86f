// Package pbx2teams holds the domain of the pbx2teams service: accounts,
// administrators, licences, PBX settings, directory users and their SIP
// configuration, the audit log, and the rules that govern them.
//
// The root package knows nothing of databases, HTTP, SIP or Microsoft 365.
// Subpackages implement its interfaces for one dependency or plane each
// (sqlstore, sqlite, postgres, api, portal, sip, media, m365, msim) and
// cmd/pbx2teams wires them together.
package pbx2teams
