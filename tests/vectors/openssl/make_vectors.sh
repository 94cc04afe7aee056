#!/bin/sh
# Regenerates the OpenSSL-made test vectors in this directory (see ../README.md).
# Usage: sh tests/vectors/openssl/make_vectors.sh    (needs the openssl CLI; keys are discarded)
set -eu
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ec256="-newkey ec -pkeyopt ec_paramgen_curve:P-256"

# 1. A CA the way tutorials make one: `openssl req -x509` with the default config
#    (basicConstraints critical CA:TRUE, SKI, AKI; no keyUsage).
openssl req -x509 $ec256 -nodes -keyout ca.key -out "$out/default-ca.pem" -subj "/O=Example Devices/CN=Example Device CA" -days 3650 2>/dev/null

# 2. A v3 client leaf from it (-extfile => v3; OpenSSL 3.0 adds no SKI/AKI on its own).
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > leaf.ext
openssl req $ec256 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=device-0001" 2>/dev/null
openssl x509 -req -in leaf.csr -CA "$out/default-ca.pem" -CAkey ca.key -CAcreateserial -CAserial serial.srl -days 365 -extfile leaf.ext -out "$out/default-ca-leaf-v3.pem" 2>/dev/null

# 3. The same without -extfile: OpenSSL 3.0 writes an X.509 v1 certificate.
openssl x509 -req -in leaf.csr -CA "$out/default-ca.pem" -CAkey ca.key -CAcreateserial -CAserial serial.srl -days 365 -out "$out/default-ca-leaf-v1.pem" 2>/dev/null

# 4. easy-rsa's CA and client profiles (easyrsa3/x509-types/ca and /client): RSA-2048,
#    AKI with keyid *and* issuer+serial.
printf 'basicConstraints=critical,CA:TRUE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always,issuer:always\nkeyUsage=critical,cRLSign,digitalSignature,keyCertSign\n' > easyrsa-ca.ext
printf 'basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer:always\nextendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > easyrsa-client.ext
openssl req -new -newkey rsa:2048 -nodes -keyout erca.key -out erca.csr -subj "/CN=Easy-RSA CA" 2>/dev/null
openssl x509 -req -in erca.csr -signkey erca.key -days 3650 -extfile easyrsa-ca.ext -out "$out/easyrsa-ca.pem" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout erc.key -out erc.csr -subj "/CN=client1" 2>/dev/null
openssl x509 -req -in erc.csr -CA "$out/easyrsa-ca.pem" -CAkey erca.key -CAcreateserial -CAserial serial.srl -days 825 -extfile easyrsa-client.ext -out "$out/easyrsa-client.pem" 2>/dev/null

# 5. CAs self-signed with SHA-1 and MD5 (to be refused as weak; cryptography cannot make these).
openssl req -x509 -sha1 $ec256 -nodes -keyout sha1.key -out "$out/sha1-ca.pem" -subj "/CN=Legacy SHA-1 CA" -days 3650 2>/dev/null
openssl req -x509 -md5 -newkey rsa:2048 -nodes -keyout md5.key -out "$out/md5-ca.pem" -subj "/CN=Legacy MD5 CA" -days 3650 2>/dev/null

# 6. CSRs: a good P-256 one with SANs, and ones each key rule must refuse.
openssl req -new $ec256 -nodes -keyout c1.key -out "$out/csr-p256-san.pem" -subj "/O=Example/CN=device-1.example" \
  -addext "subjectAltName=DNS:device-1.example,URI:spiffe://acct42/device-1,email:dev1@example.com" 2>/dev/null
openssl req -new -newkey rsa:1024 -nodes -keyout c2.key -out "$out/csr-rsa1024.pem" -subj "/CN=weak-rsa" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:secp256k1 -nodes -keyout c3.key -out "$out/csr-secp256k1.pem" -subj "/CN=k1" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-521 -nodes -keyout c4.key -out "$out/csr-p521.pem" -subj "/CN=p521" 2>/dev/null
openssl req -new -newkey ed25519 -nodes -keyout c5.key -out "$out/csr-ed25519.pem" -subj "/CN=ed" 2>/dev/null
openssl req -new -newkey rsa:2048 -sha1 -nodes -keyout c6.key -out "$out/csr-rsa2048-sha1.pem" -subj "/CN=sha1" 2>/dev/null

openssl version > "$out/OPENSSL_VERSION"
