/*
 * reload.c - the generations of exports a server serves (server_impl.h,
 * struct sgen): building and publishing one at start and on each reload
 * (SIGHUP, orfa_server_exports_update), and freeing them all at destroy.
 * Not here: reading the exports file and making backends (orfad's main).
 *
 * A new generation keeps the sexport of every export whose backend it
 * still serves (same name and source, as main decides), so that export's
 * sessions, node ids and locks carry on; its options are swapped to the
 * new table's entry and apply to every session from the next request.
 * Exports left out take no new HELLO; their sessions run until they end.
 * Generations and sexports are freed only by orfa_server_destroy, once no
 * connection is left, so a HELLO that loaded an older generation and a
 * session bound to a removed export never see freed memory.
 */
#include "server_impl.h"

#include <errno.h>
#include <stdlib.h>

#include "access.h"
#include "metrics.h"
#include "log.h"

/* The sexport of the current generation that serves backend be. */
static struct sexport *sexport_of(struct orfa_server *srv, const void *be)
{
	const struct sgen *g = srv->gen;

	for (int i = 0; g && i < g->tab->n; i++)
		if (g->sx[i]->be == be)
			return g->sx[i];
	return NULL;
}

static void sgen_unwind(struct sgen *g, struct sexport *fresh)
{
	while (fresh) {
		struct sexport *x = fresh;

		fresh = x->all_next;
		sexport_fini(x);
		free(x);
	}
	free(g->sx);
	free(g);
}

int sgen_publish(struct orfa_server *srv, const struct orfa_exports *tab)
{
	struct sexport *fresh = NULL, **tail = &fresh;
	struct sgen *g;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->tab = tab;
	g->sx = calloc((size_t)tab->n, sizeof(*g->sx));
	if (!g->sx)
		goto nomem;
	for (int i = 0; i < tab->n; i++) {
		g->sx[i] = sexport_of(srv, tab->v[i].backend);
		if (g->sx[i])
			continue;
		g->sx[i] = calloc(1, sizeof(*g->sx[i]));
		if (!g->sx[i] || sexport_init(g->sx[i], &tab->v[i])) {
			free(g->sx[i]);
			goto nomem;
		}
		g->sx[i]->metrics_idx = metrics_export_idx(tab->v[i].name);
		*tail = g->sx[i];
		tail = &g->sx[i]->all_next;
	}
	/* Nothing can fail from here: swap the kept exports' options, link
	 * the new ones, publish. */
	for (int i = 0; i < tab->n; i++)
		if (g->sx[i]->cfg != &tab->v[i])
			__atomic_store_n(&g->sx[i]->cfg, &tab->v[i],
					 __ATOMIC_RELEASE);
	*tail = srv->sx_all;
	srv->sx_all = fresh;
	g->older = srv->gen;
	__atomic_store_n(&srv->gen, g, __ATOMIC_RELEASE);
	return 0;
nomem:
	sgen_unwind(g, fresh);
	return -ENOMEM;
}

int orfa_server_exports_update(struct orfa_server *srv,
			       const struct orfa_exports *tab)
{
	if (!tab || tab->n < 1)
		return -EINVAL;
	return sgen_publish(srv, tab);
}

void sgen_free_all(struct orfa_server *srv)
{
	while (srv->sx_all) {
		struct sexport *x = srv->sx_all;

		srv->sx_all = x->all_next;
		sexport_fini(x);
		free(x);
	}
	while (srv->gen) {
		struct sgen *g = srv->gen;

		srv->gen = g->older;
		free(g->sx);
		free(g);
	}
}
