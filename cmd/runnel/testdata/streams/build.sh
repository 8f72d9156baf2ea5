#!/bin/sh
# Builds the Kafka Streams application beside this script with Maven
# (kafka-streams from Maven Central at the Kafka version of
# sync/kafka/kafkatest/pom.xml) into $RUNNEL_STREAMS_APP (default
# ~/.cache/runnel/sensor-counts-<checksum>) and prints that directory: its
# classes/ and libs/ make the class path. Idempotent; a changed source or
# pom builds again (the directory names their checksum).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kpom="$here/../../../../sync/kafka/kafkatest/pom.xml"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$kpom")
sum=$(cat "$here/pom.xml" "$here/build.sh" $(find "$here/src" -type f | sort) | cksum | cut -d' ' -f1)
out=${RUNNEL_STREAMS_APP:-$HOME/.cache/runnel/sensor-counts-$version-$sum}
if [ -f "$out/.complete" ]; then
	echo "$out"
	exit 0
fi
mkdir -p "$out"
mvn -q -B -f "$here/pom.xml" -Dkafka.version="$version" -Dapp.out="$out" \
	compile dependency:copy-dependencies -DoutputDirectory="$out/libs" -DincludeScope=runtime >&2
touch "$out/.complete"
echo "$out"
