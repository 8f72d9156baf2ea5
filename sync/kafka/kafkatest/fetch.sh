#!/bin/sh
# Fetches Apache Kafka's jars (broker, tools, clients, Connect) from Maven
# Central into $RUNNEL_KAFKA_LIBS (default ~/.cache/runnel/kafka-<version>/libs).
# Idempotent; a changed pom.xml fetches again (the marker names its checksum).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs=${RUNNEL_KAFKA_LIBS:-$HOME/.cache/runnel/kafka-$version/libs}
marker="$libs/.complete-$(cksum < "$here/pom.xml" | cut -d' ' -f1)"
if [ -f "$marker" ]; then
	echo "$libs"
	exit 0
fi
mkdir -p "$libs"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
	-DoutputDirectory="$libs" -DincludeScope=runtime >&2
touch "$marker"
echo "$libs"
