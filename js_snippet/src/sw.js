/*
 * kanal-sw.js: Kanal's service worker for web push. Serve it from the shop's own origin
 * (a service worker only controls the site it comes from), at the path of
 * `[onsite] service_worker` (default /kanal-sw.js). It shows each notification Kanal
 * sends (title, body, icon, image) and, on a click, opens its URL: a tracked link on
 * the collector that records the click and redirects to the message's page.
 */
self.addEventListener('push', function (e) {
  var m = {};
  try {
    m = e.data.json();
  } catch (x) {
    m = { title: e.data ? e.data.text() : '' };
  }
  e.waitUntil(
    self.registration.showNotification(m.title || '', {
      body: m.body,
      icon: m.icon,
      image: m.image,
      tag: m.tag,
      data: { url: m.url },
    })
  );
});

self.addEventListener('notificationclick', function (e) {
  e.notification.close();
  var url = e.notification.data && e.notification.data.url;
  url && e.waitUntil(self.clients.openWindow(url));
});
