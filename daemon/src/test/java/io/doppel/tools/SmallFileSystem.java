package io.doppel.tools;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;

/**
 * A small ext4 file system on a loop device, mounted under a test's directory, for disk-full tests: a
 * ballast file takes all but a given amount of its space, and deleting the ballast clears the fault.
 * Needs root, mkfs.ext4 and loop devices (as in CI); aborts the test saying so otherwise.
 */
public final class SmallFileSystem implements AutoCloseable
{
    private final Path mountPoint;
    private final Path backing;
    private Path ballast;

    private SmallFileSystem(final Path mountPoint, final Path backing)
    {
        this.mountPoint = mountPoint;
        this.backing = backing;
    }

    /** Makes and mounts a file system of {@code bytes} at {@code dir/name}. */
    public static SmallFileSystem mount(final Path dir, final String name, final long bytes) throws Exception
    {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")),
            "SKIPPED: a disk-fault test mounts a small file system and needs root (user is "
                + System.getProperty("user.name") + ")");
        final Path backing = dir.resolve(name + ".ext4");
        try (FileChannel ch = FileChannel.open(backing, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE))
        {
            ch.write(ByteBuffer.wrap(new byte[1]), bytes - 1);
        }
        final Path mountPoint = Files.createDirectories(dir.resolve(name));
        try
        {
            // -m 0: no blocks reserved for root, so the daemon (root in CI) runs out where the test expects
            run("mkfs.ext4", "-q", "-F", "-m", "0", backing.toString());
            run("mount", "-o", "loop", backing.toString(), mountPoint.toString());
        }
        catch (final IOException e)
        {
            Assumptions.abort("SKIPPED: cannot make and mount a small ext4 file system (needs root, mkfs.ext4 from"
                + " e2fsprogs and loop devices): " + e.getMessage());
        }
        return new SmallFileSystem(mountPoint, backing);
    }

    public Path path()
    {
        return mountPoint;
    }

    /** Bytes free for new data right now. */
    public long free() throws IOException
    {
        return Files.getFileStore(mountPoint).getUsableSpace();
    }

    /** Fills the file system with a ballast file until only about {@code leave} bytes are free. */
    public void fillLeaving(final long leave) throws IOException
    {
        ballast = mountPoint.resolve("ballast");
        final ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel ch = FileChannel.open(ballast, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.APPEND))
        {
            while (free() > leave)
            {
                chunk.clear().limit((int)Math.min(chunk.capacity(), Math.max(4096, free() - leave)));
                try
                {
                    ch.write(chunk);
                    ch.force(true);
                }
                catch (final IOException full)
                {
                    return; // it is full: as wanted
                }
            }
        }
    }

    /** Deletes the ballast: the space is back. */
    public void clear() throws IOException
    {
        if (ballast != null)
        {
            Files.deleteIfExists(ballast);
            ballast = null;
        }
    }

    @Override
    public void close() throws Exception
    {
        try
        {
            run("umount", mountPoint.toString());
        }
        catch (final IOException e)
        {
            run("umount", "-l", mountPoint.toString()); // a daemon still holding a file: detach lazily
        }
        Files.deleteIfExists(backing);
    }

    private static void run(final String... command) throws Exception
    {
        final Process p;
        try
        {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        }
        catch (final IOException e)
        {
            throw new IOException(String.join(" ", command) + ": " + e.getMessage(), e);
        }
        final String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0)
        {
            throw new IOException(String.join(" ", command) + " failed: " + out.trim());
        }
    }
}
