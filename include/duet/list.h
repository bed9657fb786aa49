/* duet/list.h - an intrusive doubly linked list (bus bookkeeping). */
#ifndef DUET_LIST_H
#define DUET_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct duet_list {
	struct duet_list *next;
	struct duet_list *prev;
};

#define DUET_LIST_INIT(name) { &(name), &(name) }

#define duet_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void duet_list_init(struct duet_list *l)
{
	l->next = l;
	l->prev = l;
}

static inline bool duet_list_empty(const struct duet_list *l)
{
	return l->next == l;
}

static inline void duet_list_add(struct duet_list *head, struct duet_list *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

static inline void duet_list_add_tail(struct duet_list *head, struct duet_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void duet_list_del(struct duet_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n;
	n->prev = n;
}

#endif /* DUET_LIST_H */
