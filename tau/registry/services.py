"""The services floor: each domain's shared objects (calendars, files, messenger, calls, flows).

They are built on first use whether or not their plugin runs; a plugin's ``install`` only mounts
them. Code that joins two services asks ``serving(name)`` at use time, so whether the other one
runs here, not the plugins' order, decides (``tau.flows`` is the main such joiner).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from tau.registry.core import component
from tau.registry.mail import MailComponents

if TYPE_CHECKING:
    from tau.atrest.convert import AtRestTable
    from tau.calendar.domain import Calendars
    from tau.connect.calls import Calls
    from tau.contacts.domain import Contacts
    from tau.dav.server import DavServer
    from tau.files.service_tree import FileTree
    from tau.flows.attach_links import AttachmentLinks
    from tau.flows.digest import ChatDigest
    from tau.flows.service import Flows
    from tau.mail.compose import FileSource
    from tau.messenger.domain import Messenger

class RoomMaker(Protocol):
    """``(organizer address, event fields) -> join URL`` for an event created with ``conference: true``
    (a Protocol, not a ``Callable`` alias: a callable component would be read as a method)."""

    def __call__(self, address: str, fields: dict[str, Any], /) -> Awaitable[str]: ...



class ServiceComponents(MailComponents):
    @component
    def atrest_tables(self) -> list[AtRestTable]:
        """Every table holding user content, for the converter that keeps it sealed under each
        user's active data key (a new store with such content adds its ``AtRestTable`` here)."""
        from tau.calendar.objects import atrest_tables as calendar_objects
        from tau.calendar.store import atrest_tables as calendars
        from tau.contacts.cardstore import atrest_tables as cards
        from tau.contacts.store import atrest_tables as books
        from tau.files.namestore import atrest_tables as files
        from tau.files.propstore import atrest_tables as file_props
        from tau.mail.pgp_store import PgpTable
        from tau.mail.sieve.store import SieveTable
        from tau.mail.store.atrest_mail import MailTable
        from tau.mail.store.queue import QueueTable
        from tau.messenger.conversations import atrest_tables as messenger

        return [MailTable(), SieveTable(), PgpTable(), QueueTable(), *files(), *file_props(), *calendars(),
                *calendar_objects(), *books(), *cards(), *messenger()]

    @component
    def calendars(self) -> Calendars:
        from tau.calendar.domain import Calendars
        from tau.calendar.scheduling import Scheduler

        cals = Calendars(self.whole)
        cals.scheduler = Scheduler(self.whole, cals)
        return cals

    @component
    def calendar_dav(self) -> DavServer:
        """CalDAV at ``/dav/`` over ``calendars`` (the calendar plugin mounts it)."""
        from tau.calendar import caldav
        from tau.calendar.davtree import CalendarProvider
        from tau.calendar.service import DAV_PREFIX
        from tau.dav.server import DavServer

        server = DavServer(CalendarProvider(self.calendars), DAV_PREFIX, clock=self.reactor.seconds,
                           db=self.db, max_lock_timeout=self.config.dav.max_lock_timeout)
        caldav.register(server)
        if "contacts" not in self.config.tau.disabled_services:
            from tau.contacts.carddav import principal_properties

            principal_properties(server.properties)   # DAVx5 and iOS look for address books here too
        return server

    @component
    def contacts(self) -> Contacts:
        """Address books behind CardDAV, ``/api/contacts`` and collected addresses."""
        from tau.contacts.domain import Contacts

        return Contacts(self.whole)

    @component
    def contacts_dav(self) -> DavServer:
        """CardDAV at ``/dav/addressbooks/`` over ``contacts`` (the contacts plugin mounts it)."""
        from tau.contacts import carddav
        from tau.contacts.davtree import PREFIX, ContactsProvider
        from tau.dav.server import DavServer

        server = DavServer(ContactsProvider(self.contacts), PREFIX, clock=self.reactor.seconds, db=self.db,
                           max_lock_timeout=self.config.dav.max_lock_timeout)
        carddav.register(server)
        return server

    @component
    def calendar_conference(self) -> RoomMaker | None:
        """Typed optional hook for ``Calendars.create_event(conference=True)``: ``None`` in the
        daemon, where ``POST /api/events`` and the mail → event flow already turn ``conference:
        true`` into a join URL through ``flows.conference`` before the calendar sees it. Tests
        provide a fake room maker to exercise the calendar's side on its own."""
        return None

    @component
    def files_tree(self) -> FileTree:
        """The one file tree behind WebDAV, ``/api/files``, shares and the flows."""
        from tau.files.service_tree import FileTree, files_blob_store

        return FileTree(self.whole, files_blob_store(self.whole))

    @component
    def files_dav(self) -> DavServer:
        """WebDAV at ``/dav/files/`` over ``files_tree``; its lock store also guards REST writes."""
        from tau.dav.server import DavServer
        from tau.files.davtree import FilesProvider
        from tau.files.service import DAV_PREFIX

        return DavServer(FilesProvider(self.files_tree), DAV_PREFIX, clock=self.reactor.seconds, db=self.db,
                         max_lock_timeout=self.config.dav.max_lock_timeout)

    @component
    def messenger(self) -> Messenger:
        """The messenger; when its plugin runs, its presence knows this node's sockets."""
        from tau.messenger.domain import Messenger

        return Messenger(self.whole)

    @component
    def calls(self) -> Calls:
        """A signalling-only handle on calls (no media workers) for the flows; the connect
        plugin builds its own with the SFU. Both keep no state beyond the database and the bus."""
        from tau.connect.calls import Calls

        return Calls(self.whole)

    @component
    def flows(self) -> Flows:
        """The cross-service flows (mail → call/chat/event/cloud, event → call)."""
        from tau.flows.service import Flows

        return Flows(self.whole)

    @component
    def chat_digest(self) -> ChatDigest:
        from tau.flows.digest import ChatDigest

        return ChatDigest(self.whole)

    @component
    def attachment_links(self) -> AttachmentLinks | None:
        """Big outgoing attachments as share links: only where the flows run and
        ``[flows] attachment_link_threshold`` is set. Decided on first use (a submission)."""
        if not self.config.flows.attachment_link_threshold or not self.serving("flows"):
            return None
        from tau.flows.attach_links import AttachmentLinks

        return AttachmentLinks(self.whole)

    @component
    def attachment_files(self) -> FileSource:
        """TauCloud files that mail attaches by id (``compose.FileSource``): mail does not import files."""
        from tau.files.attachments import AttachmentFiles

        return AttachmentFiles(self.whole)

    @component
    def started_at(self) -> float:
        """Start of the daemon on the registry's clock (the admin plugin asks for it at install)."""
        return float(self.reactor.seconds())
