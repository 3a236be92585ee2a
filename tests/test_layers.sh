# test_layers.sh: the folders' dependency direction of doc/architecture.md holds: base/ includes
# nothing of the project's; kernels/ and data/ only base/; parallel/ only kernels/ and base/. A
# lower folder that includes a higher one fails here, naming the file and the include.
. "$top_srcdir/tests/tap.sh"
cd "$top_srcdir" || exit 1

# layer FOLDER ALLOWED...: every project include in FOLDER's sources names FOLDER or an ALLOWED one
layer() {
    d=$1
    shift
    allowed="$d $*"
    bad=$(grep -rnoE --include='*.[ch]' --include='*.cu' --include='*.cuh' '#include "[a-z]+/[^"]*"' "$d" |
          while IFS= read -r hit; do
              to=${hit#*#include \"}
              case " $allowed " in *" ${to%%/*} "*) ;; *) echo "$hit" ;; esac
          done)
    [ -z "$bad" ]
    tap_ok $? "$d/ includes ${*:+only }${*:-no other folder}"
    [ -z "$bad" ] || echo "$bad" | sed 's/^/#   /'
}
layer base
layer kernels base
layer data base
layer parallel kernels base
layer src parallel kernels data base
layer tools src parallel kernels data base
tap_done
