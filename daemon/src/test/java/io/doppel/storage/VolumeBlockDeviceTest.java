package io.doppel.storage;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real block device: a loop device over a file (needs root and losetup, as in CI). The size comes
 * from ioctl(BLKGETSIZE64), and bytes written through the mapping land in the backing file.
 */
class VolumeBlockDeviceTest
{
    @TempDir
    Path dir;

    @Test
    void opensALoopDeviceWithItsIoctlSizeAndWritesThrough() throws Exception
    {
        final Path backing = dir.resolve("backing.img");
        try (FileChannel ch = FileChannel.open(backing, StandardOpenOption.CREATE, StandardOpenOption.WRITE))
        {
            ch.write(ByteBuffer.wrap(new byte[1]), (48L << 20) - 1);
        }
        final String device = attach(backing);
        try
        {
            try (Volume v = Volume.open(Path.of(device), 0))
            {
                assertThat(v.isBlockDevice()).isTrue();
                assertThat(v.size()).isEqualTo(48L << 20);
                v.write((32L << 20) - 3, ByteBuffer.wrap("across a MiB".getBytes(StandardCharsets.US_ASCII)));
                v.flush();
            }
            try (Volume v = Volume.open(Path.of(device), 64L << 20))
            {
                throw new AssertionError("a 48 MiB device must refuse a 64 MiB volume: " + v.size());
            }
            catch (final IOException expected)
            {
                assertThat(expected.getMessage()).contains(device).contains(String.valueOf(48L << 20))
                    .contains(String.valueOf(64L << 20));
            }
        }
        finally
        {
            run("losetup", "-d", device);
        }
        final ByteBuffer back = ByteBuffer.allocate(12);
        try (FileChannel ch = FileChannel.open(backing, StandardOpenOption.READ))
        {
            ch.read(back, (32L << 20) - 3);
        }
        assertThat(new String(back.array(), StandardCharsets.US_ASCII)).isEqualTo("across a MiB");
    }

    private static String attach(final Path file) throws Exception
    {
        final String out;
        try
        {
            out = run("losetup", "-f", "--show", file.toString());
        }
        catch (final IOException e)
        {
            Assumptions.abort("SKIPPED: cannot attach a loop device (needs root and losetup): " + e.getMessage());
            throw e;
        }
        return out.trim();
    }

    private static String run(final String... command) throws Exception
    {
        final Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        final String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0)
        {
            throw new IOException(String.join(" ", command) + " failed: " + out.trim());
        }
        return out;
    }
}
