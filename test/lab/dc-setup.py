#!/usr/bin/python3
"""Fills a freshly provisioned lab directory with the contract's objects.

Runs inside the DC's mount namespace, on its sam.ldb directly, before samba
starts: no network, no credentials, and no password ever on a command line
(samba-tool takes new passwords as arguments; this reads them from the lab's
root-only files).

Usage: dc-setup.py SMB_CONF SECRETS_DIR FILES_FQDN FILES_IP
"""
import os
import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import dnsp, security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB
from samba.sd_utils import SDUtils

COMPUTER_CLASS = "bf967a86-0de6-11d0-a285-00aa003049e2"
USERS = {
    "alice": ("Alice", "Martin"),
    "bob": ("Bob", "Durand"),
    "Jean.Dupont": ("Jean", "Dupont"),
    "dsvmadmin": ("DSVM", "Admin"),
    "mallory": ("Mallory", "Outsider"),
    "dsvm-join": (None, None),
}
GROUPS = {
    "dsvm-users": ["alice", "bob", "Jean.Dupont", "dsvmadmin"],
    "dsvm-admins": ["dsvmadmin"],
}


def read_secret(secrets_dir, name):
    with open(os.path.join(secrets_dir, name), encoding="utf-8") as f:
        return f.read().strip()


def main():
    smb_conf, secrets_dir, files_fqdn, files_ip = sys.argv[1:5]
    lp = LoadParm()
    lp.load(smb_conf)
    samdb = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
    base = str(samdb.domain_dn())

    samdb.setpassword("(sAMAccountName=Administrator)",
                      read_secret(secrets_dir, "admin-password"))
    for user, (given, surname) in USERS.items():
        samdb.newuser(user, read_secret(secrets_dir, "passwords/" + user),
                      givenname=given, surname=surname)
    for group, members in GROUPS.items():
        samdb.newgroup(group)
        samdb.add_remove_group_members(group, members)

    # The join account gets what a real AD admin delegates for joins: create
    # and delete computer objects in this OU, full control over those objects
    # only. Domain Admins would hide a missing delegation in the agent.
    ou_dn = "OU=DSVM," + base
    samdb.create_ou(ou_dn)
    found = samdb.search(base, scope=ldb.SCOPE_SUBTREE,
                         expression="(sAMAccountName=dsvm-join)",
                         attrs=["objectSid"])
    join_sid = str(ndr_unpack(security.dom_sid, found[0]["objectSid"][0]))
    SDUtils(samdb).dacl_add_ace(
        ou_dn,
        "(OA;CI;CCDC;%s;;%s)(OA;CIIO;GA;;%s;%s)"
        % (COMPUTER_CLASS, join_sid, COMPUTER_CLASS, join_sid))

    record = dnsp.DnssrvRpcRecord()
    record.wType = dnsp.DNS_TYPE_A
    record.rank = dnsp.DNS_RANK_ZONE
    record.dwTtlSeconds = 300
    record.data = files_ip
    # dns_replace() only rewrites existing names: add the node itself.
    zone = lp.get("realm").lower()
    node = ldb.Message(ldb.Dn(samdb, "DC=%s,DC=%s,CN=MicrosoftDNS,DC=DomainDnsZones,%s"
                              % (files_fqdn[:-len(zone) - 1], zone, base)))
    node["objectClass"] = ldb.MessageElement(["top", "dnsNode"], ldb.FLAG_MOD_ADD, "objectClass")
    node["dnsRecord"] = ldb.MessageElement([ndr_pack(record)], ldb.FLAG_MOD_ADD, "dnsRecord")
    samdb.add(node)


if __name__ == "__main__":
    main()
