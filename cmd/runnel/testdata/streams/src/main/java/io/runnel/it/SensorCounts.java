package io.runnel.it;

import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Counts sensor readings per sensor, exactly once.
 *
 * <p>Reads records whose value is "SENSOR VALUE" (keyed by the gateway that
 * sent them), re-keys them by sensor (a repartition topic), counts them in a
 * persistent state store (RocksDB, with its compacted changelog topic) and
 * writes each sensor's new count (a long) for every reading to the output topic, with
 * processing.guarantee=exactly_once_v2: every reading is counted once in
 * the output that read_committed consumers see, whatever crashes.
 *
 * <p>Arguments: bootstrap servers, application id, input topic, output
 * topic, state directory, and a delay in milliseconds spent on each
 * reading's count (after the repartition topic, so that counting lasts
 * long enough to be interrupted while its output is committed in many
 * small transactions).
 *
 * <p>The process exits with status 1 when the Streams client stops in
 * error (a fatal error of a stream thread), 0 on SIGTERM.
 */
public final class SensorCounts {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: SensorCounts BOOTSTRAP APP_ID INPUT OUTPUT STATE_DIR DELAY_MS");
            System.exit(2);
        }
        String bootstrap = args[0], appID = args[1], input = args[2], output = args[3], stateDir = args[4];
        long delay = Long.parseLong(args[5]);

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appID);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        // No record cache: every reading yields its sensor's new count, so
        // the committed output of a sensor is exactly 1, 2, 3, ...
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // Consumed records of the repartition topic are deleted (DeleteRecords)
        // after every commit that is at least a second after the last one.
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 1000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 100);
        // Short session so a restarted application gets its partitions back
        // soon after the previous process was killed.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 10000);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG), 10000);

        StreamsBuilder b = new StreamsBuilder();
        b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .selectKey((gateway, reading) -> reading.split(" ", 2)[0])
            .groupByKey(Grouped.with("by-sensor", Serdes.String(), Serdes.String()))
            .count(Materialized.as("counts"))
            .toStream()
            .peek((sensor, count) -> pause(delay))
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(b.build(), p);
        CountDownLatch done = new CountDownLatch(1);
        int[] status = {0};
        streams.setStateListener((now, before) -> {
            System.out.println("sensor-counts: state " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR) {
                status[0] = 1;
            }
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                done.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            done.countDown();
        }));
        streams.start();
        done.await();
        streams.close();
        System.out.println("sensor-counts: exit " + status[0]);
        System.exit(status[0]);
    }

    private static void pause(long ms) {
        if (ms <= 0) {
            return;
        }
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
