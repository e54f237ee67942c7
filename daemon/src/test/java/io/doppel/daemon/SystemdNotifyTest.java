package io.doppel.daemon;

import io.doppel.replication.DaemonProcesses;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The daemon started the way systemd starts a {@code Type=notify} service with {@code WatchdogSec=}:
 * {@code NOTIFY_SOCKET} and {@code WATCHDOG_USEC} in its environment. A real Unix datagram socket
 * receives READY=1 with a STATUS line, STATUS updates as replication comes up, WATCHDOG=1 pings,
 * a refused reload on SIGHUP (RELOADING=1, then READY=1 with the reason in STATUS), and STOPPING=1 on
 * SIGTERM.
 */
class SystemdNotifyTest
{
    @TempDir
    Path dir;

    @Test
    void readyStatusWatchdogAndStoppingArriveOnTheNotifySocket() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, 16L << 20);
        MixedImage.create(cluster.alphaImage, 16L << 20, 101);
        final Path socket = dir.resolve("notify.sock");
        final int fd = SdNotify.LIBC.socket(SdNotify.AF_UNIX, SdNotify.SOCK_DGRAM, 0);
        final byte[] addr = new byte[SdNotify.SOCKADDR_UN_BYTES];
        SdNotify.LIBC.bind(fd, addr, SdNotify.sockaddr(socket.toString(), addr));
        final List<String> received = new ArrayList<>();
        final Thread reader = new Thread(() ->
        {
            final byte[] buf = new byte[4096];
            while (true)
            {
                final long n;
                try
                {
                    n = SdNotify.LIBC.recv(fd, buf, buf.length, 0);
                }
                catch (final RuntimeException e)
                {
                    return; // closed
                }
                if (n <= 0)
                {
                    return;
                }
                synchronized (received)
                {
                    received.add(new String(buf, 0, (int)n, StandardCharsets.UTF_8));
                }
            }
        }, "notify-reader");
        reader.setDaemon(true);
        reader.start();
        try (DaemonProcesses daemons = new DaemonProcesses(dir))
        {
            daemons.start(cluster.betaConfig(), "beta");
            final Path alphaFile = cluster.alphaConfig();
            final Process alpha = daemons.start(alphaFile, "alpha", "NOTIFY_SOCKET", socket.toString(),
                "WATCHDOG_USEC", "400000");
            daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 60);
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < deadline && !all(received).contains("STATUS=vm1: primary streaming, standby up-to-date"))
            {
                Thread.sleep(100);
            }
            // systemctl reload with a change that cannot apply live: RELOADING=1, then READY=1 with the reason.
            java.nio.file.Files.writeString(alphaFile, java.nio.file.Files.readString(alphaFile)
                .replace("block-size = \"4KiB\"", "block-size = \"64KiB\""));
            assertThat(new ProcessBuilder("kill", "-HUP", Long.toString(alpha.pid())).start().waitFor()).isZero();
            final long reloadDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < reloadDeadline && !all(received).contains("STATUS=reload refused"))
            {
                Thread.sleep(100);
            }
            alpha.destroy(); // SIGTERM, as systemctl stop
            assertThat(alpha.waitFor(30, TimeUnit.SECONDS)).isTrue();
            Thread.sleep(300);
            final String all = all(received);
            final List<String> messages;
            synchronized (received)
            {
                messages = new ArrayList<>(received);
            }
            assertThat(messages).as("notifications received").isNotEmpty();
            assertThat(messages.get(0)).as("the first notification").startsWith("READY=1\nSTATUS=vm1: primary ");
            assertThat(all).contains("STATUS=vm1: primary streaming, standby up-to-date, 0 B dirty");
            assertThat(messages.stream().filter("WATCHDOG=1"::equals).count()).as("watchdog pings every 200 ms")
                .isGreaterThanOrEqualTo(3);
            assertThat(all).containsPattern("RELOADING=1\nMONOTONIC_USEC=\\d+");
            assertThat(all).contains("READY=1\nSTATUS=reload refused (see journal): vm1: block-size 4KiB -> 64KiB"
                + " cannot change live");
            assertThat(messages.get(messages.size() - 1)).startsWith("STOPPING=1");
        }
        finally
        {
            SdNotify.LIBC.close(fd);
        }
    }

    private static String all(final List<String> received)
    {
        synchronized (received)
        {
            return String.join("\n", received);
        }
    }
}
