package io.doppel.admin;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code GET /metrics} scraped during replication: byte counters move, every doppel meter has a
 * description, and the lag gauges rise while replication is paused and return to 0 after resume.
 */
class MetricsTest
{
    private static final long SIZE = 32L << 20;
    private final HttpClient http = HttpClient.newHttpClient();

    @TempDir
    Path dir;

    @Test
    void countersMoveAndLagRisesWhilePausedAndReturnsToZero() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 111);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            await(vm1::inSync, 60);
            for (int i = 0; i < 20; i++)
            {
                vm1.write(i * 65536L, ByteBuffer.wrap(new byte[4096]).put(0, (byte)(i + 1)));
                Thread.sleep(5);
            }
            await(vm1::inSync, 30);
            String text = scrape(cluster.alphaAdmin);
            assertThat(value(text, "doppel_replication_write_lag_seconds_count")).as("writes timed to the standby")
                .isPositive();
            assertThat(value(text, "doppel_replication_sent_bytes_total")).isPositive();
            assertThat(value(scrape(cluster.betaAdmin), "doppel_replication_received_bytes_total")).isPositive();
            assertThat(value(text, "doppel_replication_lag_age_seconds")).isZero();
            assertThat(value(text, "doppel_sync_total_bytes")).as("the first compare covered the volume").isEqualTo(SIZE);
            assertThat(value(text, "doppel_sync_eta_seconds")).isZero();
            assertThat(value(text, "doppel_replication_ack_latency_seconds_count")).as("acks timed").isPositive();
            assertThat(value(text, "doppel_replication_ack_latency_seconds_sum")).isPositive();
            assertThat(text).contains("doppel_replication_ack_latency_seconds_bucket{");
            for (final String line : text.split("\n"))
            {
                if (line.startsWith("doppel_"))
                {
                    final String name = line.substring(0, line.indexOf('{'));
                    final String base = name.replaceAll("_(total|bucket|count|sum|max)$", "");
                    assertThat(text).as("HELP for %s", name).containsPattern("# HELP " + base + "(_total)? \\S");
                }
            }

            alpha.runVerb("vm1", "pause", Map.of());
            await(() -> !vm1.state().connected(), 30);
            vm1.write(4096, ByteBuffer.wrap(new byte[8192]));
            value(scrape(cluster.alphaAdmin), "doppel_replication_lag_age_seconds"); // samples the paused state
            Thread.sleep(1200);
            text = scrape(cluster.alphaAdmin);
            assertThat(value(text, "doppel_replication_lag_bytes")).as("lag bytes while paused").isGreaterThanOrEqualTo(8192);
            assertThat(value(text, "doppel_replication_lag_age_seconds")).as("lag age while paused").isGreaterThan(1.0);
            assertThat(value(text, "doppel_link_up_state")).isZero();

            alpha.runVerb("vm1", "resume", Map.of());
            await(vm1::inSync, 60);
            text = scrape(cluster.alphaAdmin);
            assertThat(value(text, "doppel_replication_lag_bytes")).isZero();
            assertThat(value(text, "doppel_replication_lag_age_seconds")).isZero();
            assertThat(value(text, "doppel_link_connects_connections_total")).isGreaterThanOrEqualTo(2);
            assertThat(value(text, "doppel_link_disconnects_connections_total")).as("the pause cut the link")
                .isGreaterThanOrEqualTo(1);
        }
    }

    private String scrape(final int adminPort) throws Exception
    {
        final HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + adminPort
            + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        return r.body();
    }

    /** The value of the first sample of {@code name} (any labels). */
    private static double value(final String text, final String name)
    {
        for (final String line : text.split("\n"))
        {
            if (line.startsWith(name + "{"))
            {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        throw new AssertionError("no sample " + name + " in\n" + text);
    }

    private static void await(final BooleanSupplier condition, final int seconds) throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean())
        {
            assertThat(System.nanoTime()).as("condition within %d s", seconds).isLessThan(deadline);
            Thread.sleep(20);
        }
    }
}
