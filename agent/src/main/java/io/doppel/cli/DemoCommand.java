package io.doppel.cli;

import io.doppel.config.ConfigLoader;
import io.doppel.config.DoppelConfig;
import io.doppel.config.Units;
import io.doppel.daemon.DoppelNode;
import io.doppel.log.Log;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.VolumeState;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code doppel demo}: a primary and a standby on loopback, in this process, replicating a sample
 * image while it is written to; ends by proving the two images identical (hash of each).
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
    description = "Run a primary and a standby on loopback, write to the primary while it replicates, "
        + "then prove the standby identical.")
final class DemoCommand implements Callable<Integer>
{
    @Option(names = "--size", defaultValue = "256MiB", description = "sample image size (default: ${DEFAULT-VALUE})")
    String size;

    @Option(names = "--seconds", defaultValue = "5", description = "how long to write while replicating (default: ${DEFAULT-VALUE})")
    int seconds;

    @Option(names = "--dir", description = "work directory (default: a new temporary one, removed at the end)")
    Path dir;

    @Option(names = "--keep", description = "keep the work directory (images, configs, metadata)")
    boolean keep;

    @Option(names = "--compression", defaultValue = "lz4", description = "lz4 | zstd | none (default: ${DEFAULT-VALUE})")
    String compression;

    private final boolean tty = System.console() != null;

    @Override
    public Integer call() throws Exception
    {
        final long bytes = Units.parseSize(size);
        final boolean temporary = dir == null;
        final Path work = temporary ? Files.createTempDirectory("doppel-demo-") : Files.createDirectories(dir);
        try
        {
            return run(work, bytes);
        }
        finally
        {
            if (temporary && !keep)
            {
                deleteTree(work);
            }
            else
            {
                System.out.println("work directory kept: " + work);
            }
        }
    }

    private int run(final Path work, final long bytes) throws Exception
    {
        final Path primaryImage = work.resolve("alpha/vm1.img");
        final Path standbyImage = work.resolve("beta/vm1.img");
        Files.createDirectories(primaryImage.getParent());
        Files.createDirectories(standbyImage.getParent());
        say("creating a " + Units.formatBytes(bytes) + " sample image (zeros, text-like and random stripes): "
            + primaryImage);
        MixedImage.create(primaryImage, bytes, 42);

        final int[] ports = LoopbackPorts.free(4);
        final Path alphaToml = work.resolve("alpha.toml");
        final Path betaToml = work.resolve("beta.toml");
        Files.writeString(alphaToml, config("alpha", ports[0], ports[1], "beta", ports[2], work.resolve("alpha"),
            primaryImage, "primary", bytes));
        Files.writeString(betaToml, config("beta", ports[2], ports[3], "alpha", ports[0], work.resolve("beta"),
            standbyImage, "standby", bytes));
        final DoppelConfig alphaConfig = ConfigLoader.load(alphaToml);
        final DoppelConfig betaConfig = ConfigLoader.load(betaToml);
        Log.setLevel("warn"); // the demo prints its own progress; warnings and errors still show

        say("starting standby beta (peer port " + ports[2] + ", admin http://127.0.0.1:" + ports[3]
            + "/status) and primary alpha (admin http://127.0.0.1:" + ports[1] + "/status)");
        try (DoppelNode beta = DoppelNode.start(betaConfig); DoppelNode alpha = DoppelNode.start(alphaConfig))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            final long syncStart = System.nanoTime();
            while (vm1.state().replication() != VolumeState.Replication.STREAMING)
            {
                progress(String.format(Locale.ROOT, "initial sync: %s compared of %s, %s sent",
                    Units.formatBytes(vm1.state().syncedBytes()), Units.formatBytes(bytes),
                    Units.formatBytes(vm1.state().bytesSent())));
                if (System.nanoTime() - syncStart > 300_000_000_000L)
                {
                    return fail("initial sync did not finish in 300 s: " + vm1.state().lastError());
                }
                Thread.sleep(200);
            }
            endProgress();
            say(String.format(Locale.ROOT, "initial sync done in %.1f s, %s sent for a %s image (zero stripes elided,"
                    + " the rest %s-compressed)", (System.nanoTime() - syncStart) / 1e9,
                Units.formatBytes(vm1.state().bytesSent()), Units.formatBytes(bytes), compression));

            say("writing to the primary for " + seconds + " s while it replicates");
            final long written = writeLoad(vm1, bytes);
            endProgress();
            say("wrote " + Units.formatBytes(written) + "; waiting for the standby to acknowledge everything");
            final long waitStart = System.nanoTime();
            while (!vm1.inSync())
            {
                if (System.nanoTime() - waitStart > 120_000_000_000L)
                {
                    return fail("standby did not catch up within 120 s (" + vm1.state().replication() + ", "
                        + vm1.dirtyBytes() + " bytes dirty, " + vm1.logBytes() + " in the log, last error: " + vm1.state().lastError() + ")");
                }
                Thread.sleep(50);
            }
            vm1.flush();
            beta.standby("vm1").volume().flush();
            final String primaryHash = MixedImage.hash(primaryImage);
            final String standbyHash = MixedImage.hash(standbyImage);
            say("primary alpha  " + primaryImage + "  xxh3-128 " + primaryHash);
            say("standby beta   " + standbyImage + "  xxh3-128 " + standbyHash);
            say(String.format(Locale.ROOT, "traffic: %s sent, %s of zeros elided, %s saved by compression",
                Units.formatBytes(vm1.state().bytesSent()), Units.formatBytes(vm1.state().zeroBytes()),
                Units.formatBytes(vm1.state().compressionSavedBytes())));
            if (!primaryHash.equals(standbyHash))
            {
                return fail("the standby differs from the primary");
            }
            say("OK: the standby is identical to the primary");
            return 0;
        }
    }

    /** Writes random-sized chunks of mixed content at random offsets for {@link #seconds} seconds. */
    private long writeLoad(final PrimaryVolume vm1, final long bytes) throws InterruptedException
    {
        final SplittableRandom random = new SplittableRandom(7);
        final byte[] chunk = new byte[256 << 10];
        final long end = System.nanoTime() + seconds * 1_000_000_000L;
        long written = 0;
        long writes = 0;
        long lastReport = 0;
        final long start = System.nanoTime();
        while (System.nanoTime() < end)
        {
            final int length = 4096 * (1 + random.nextInt(64));
            final long offset = random.nextLong(bytes - length + 1) & ~511L;
            final int kind = random.nextInt(3);
            if (kind == 0)
            {
                java.util.Arrays.fill(chunk, 0, length, (byte)0);
            }
            else
            {
                MixedImage.fill(chunk, length, kind == 1, random);
            }
            vm1.write(offset, ByteBuffer.wrap(chunk, 0, length));
            written += length;
            writes++;
            final long now = System.nanoTime();
            if (now - lastReport > 250_000_000L)
            {
                lastReport = now;
                final double elapsed = (now - start) / 1e9;
                progress(String.format(Locale.ROOT, "%4.1f s: %d writes, %s written (%.0f MiB/s), %s sent,"
                        + " %s pending, %s", elapsed, writes, Units.formatBytes(written), written / elapsed / (1 << 20),
                    Units.formatBytes(vm1.state().bytesSent()), Units.formatBytes(vm1.logBytes() + vm1.dirtyBytes()),
                    vm1.state().replication().wireName()));
            }
            if ((writes & 15) == 0)
            {
                Thread.sleep(1); // a steady writer, not a flood: leave the sender some of the two cores
            }
        }
        return written;
    }

    private String config(final String node, final int listen, final int admin, final String peer,
        final int peerPort, final Path dataDir, final Path image, final String role, final long size)
    {
        return String.join("\n",
            "# written by doppel demo",
            "[node]",
            "name = \"" + node + "\"",
            "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"",
            "data-dir = \"" + dataDir + "\"",
            "",
            "[[peer]]",
            "name = \"" + peer + "\"",
            "address = \"127.0.0.1:" + peerPort + "\"",
            "",
            "[[volume]]",
            "name = \"vm1\"",
            "path = \"" + image + "\"",
            "size = " + size,
            "role = \"" + role + "\"",
            "peer = \"" + peer + "\"",
            "block-size = \"4KiB\"",
            "compression = \"" + compression + "\"",
            "");
    }

    private void progress(final String line)
    {
        if (tty)
        {
            System.out.print("\r\033[K" + line);
            System.out.flush();
        }
        else
        {
            System.out.println("  " + line);
        }
    }

    private void endProgress()
    {
        if (tty)
        {
            System.out.println();
        }
    }

    private static void say(final String line)
    {
        System.out.println("doppel demo: " + line);
    }

    private static int fail(final String why)
    {
        System.out.println();
        System.err.println("doppel demo: FAILED: " + why);
        return 1;
    }

    private static void deleteTree(final Path root) throws IOException
    {
        try (Stream<Path> walk = Files.walk(root))
        {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
