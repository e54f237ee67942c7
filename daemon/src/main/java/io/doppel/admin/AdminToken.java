package io.doppel.admin;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Set;

/**
 * The secret that state-changing admin requests must present ({@code Authorization: Bearer TOKEN}).
 * It lives in a file only the daemon's user (and root) may read, so being able to read that file is
 * what it takes to promote, demote, pause or resync: a local user who is neither cannot. The daemon
 * makes the file with a fresh random 256-bit token on its first start, and refuses to start when the
 * file is readable or writable by group or others, since the token would then protect nothing.
 */
public final class AdminToken
{
    /** Shortest token accepted from a file an operator wrote: 128 bits as hex. */
    public static final int MIN_LENGTH = 32;
    private static final Set<PosixFilePermission> SHARED = EnumSet.of(PosixFilePermission.GROUP_READ,
        PosixFilePermission.GROUP_WRITE, PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE);

    /**
     * The token file is unsafe (group or others may read it, another user owns it) or holds no usable token:
     * a fault in the set-up that a restart cannot fix, so the daemon exits as for a bad config.
     */
    public static final class UnsafeTokenFileException extends IOException
    {
        private static final long serialVersionUID = 1L;

        UnsafeTokenFileException(final String message)
        {
            super(message);
        }
    }

    private final Path file;
    private final byte[] secret;

    private AdminToken(final Path file, final byte[] secret)
    {
        this.file = file;
        this.secret = secret;
    }

    /**
     * The token in {@code file}; when there is no such file, a new random one written there with mode 0600
     * (the file is created with that mode, so it is never readable by others, not even for a moment).
     *
     * @throws IOException naming the file and what to do: group/world access (chmod 600), unreadable, malformed
     */
    public static AdminToken loadOrCreate(final Path file) throws IOException
    {
        if (!Files.exists(file, java.nio.file.LinkOption.NOFOLLOW_LINKS))
        {
            try
            {
                return create(file);
            }
            catch (final FileAlreadyExistsException raced)
            {
                // Another process made it between the check and the create: read theirs below.
            }
        }
        final Set<PosixFilePermission> perms;
        try
        {
            perms = Files.getPosixFilePermissions(file);
        }
        catch (final IOException e)
        {
            throw new IOException(file + " ([node].admin-token-file): cannot read the admin token: " + describe(e), e);
        }
        final String owner = Files.getOwner(file).getName();
        final String self = System.getProperty("user.name");
        if (!owner.equals(self) && !owner.equals("root"))
        {
            throw new UnsafeTokenFileException(file + " ([node].admin-token-file): owned by user " + owner + ", who could set the"
                + " admin token; it must belong to the daemon's user (" + self + ") or root: chown " + self + " " + file);
        }
        if (!java.util.Collections.disjoint(perms, SHARED))
        {
            throw new UnsafeTokenFileException(file + " ([node].admin-token-file): mode " + mode(perms) + " ("
                + PosixFilePermissions.toString(perms) + ") lets group or others read or change the admin token;"
                + " it must be readable only by the daemon's user: chmod 600 " + file);
        }
        return new AdminToken(file, parse(read(file), file));
    }

    /** Writes a new token; fails with {@link FileAlreadyExistsException} if the file appeared meanwhile. */
    private static AdminToken create(final Path file) throws IOException
    {
        final Path dir = file.toAbsolutePath().getParent();
        if (dir != null)
        {
            Files.createDirectories(dir);
        }
        final byte[] random = new byte[32];
        new SecureRandom().nextBytes(random);
        final String hex = HexFormat.of().formatHex(random);
        try (SeekableByteChannel out = Files.newByteChannel(file,
            EnumSet.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
            PosixFilePermissions.asFileAttribute(EnumSet.of(PosixFilePermission.OWNER_READ,
                PosixFilePermission.OWNER_WRITE))))
        {
            final ByteBuffer bytes = ByteBuffer.wrap((hex + "\n").getBytes(StandardCharsets.US_ASCII));
            while (bytes.hasRemaining())
            {
                out.write(bytes);
            }
        }
        catch (final FileAlreadyExistsException e)
        {
            throw e;
        }
        catch (final IOException e)
        {
            throw new IOException(file + " ([node].admin-token-file): cannot create the admin token file: "
                + describe(e) + " (under systemd the file's directory must be in ReadWritePaths=, or create the"
                + " file beforehand: openssl rand -hex 32 > " + file + "; chmod 600 " + file + ")", e);
        }
        // The umask can only take bits away from 0600; this makes sure no ACL default added any.
        Files.setPosixFilePermissions(file, EnumSet.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE));
        return new AdminToken(file, hex.getBytes(StandardCharsets.US_ASCII));
    }

    private static String read(final Path file) throws IOException
    {
        try
        {
            return Files.readString(file, StandardCharsets.US_ASCII);
        }
        catch (final IOException e)
        {
            throw new IOException(file + " ([node].admin-token-file): cannot read the admin token: " + describe(e), e);
        }
    }

    /**
     * The token in a file's text (surrounding white space dropped): printable ASCII without spaces, at least
     * {@link #MIN_LENGTH} characters, since it travels in an HTTP header.
     */
    public static byte[] parse(final String text, final Path file) throws IOException
    {
        final String token = text.strip();
        final String problem = problem(token);
        if (problem != null)
        {
            throw new UnsafeTokenFileException(file + " ([node].admin-token-file): " + problem + "; delete the file and the daemon"
                + " makes a new token on its next start, or write one: openssl rand -hex 32 > " + file);
        }
        return token.getBytes(StandardCharsets.US_ASCII);
    }

    /** What is wrong with a token, or null when it is acceptable. */
    public static String problem(final String token)
    {
        if (token.isEmpty())
        {
            return "the file is empty";
        }
        for (int i = 0; i < token.length(); i++)
        {
            final char c = token.charAt(i);
            if (c < 0x21 || c > 0x7e)
            {
                return "the token holds a character other than printable ASCII (at " + i + ")";
            }
        }
        if (token.length() < MIN_LENGTH)
        {
            return "the token is " + token.length() + " characters; expected at least " + MIN_LENGTH;
        }
        return null;
    }

    /** Whether {@code presented} is the token; the time it takes does not depend on where they differ. */
    public boolean matches(final String presented)
    {
        return presented != null
            && MessageDigest.isEqual(presented.getBytes(StandardCharsets.US_ASCII), secret);
    }

    /** Where the token is kept (named in refusals, so the operator knows what to read). */
    public Path file()
    {
        return file;
    }

    /** The token itself, for a client in the same process (tests). */
    public String value()
    {
        return new String(secret, StandardCharsets.US_ASCII);
    }

    private static String mode(final Set<PosixFilePermission> perms)
    {
        int bits = 0;
        for (final PosixFilePermission p : perms)
        {
            bits |= 1 << (8 - p.ordinal());
        }
        return String.format("%04o", bits);
    }

    private static String describe(final IOException e)
    {
        if (e instanceof AccessDeniedException)
        {
            return "permission denied (the daemon runs as user " + System.getProperty("user.name") + ")";
        }
        if (e instanceof NoSuchFileException)
        {
            return "no such file or directory";
        }
        return e.getMessage();
    }
}
