"""The back office's routes, mounted by gateway/app.py under /backoffice."""

from __future__ import annotations

from starlette.routing import Route

from gateway.backoffice import convenios, dashboard, duplicatas, limits, login, logs, participants, reconciliation

P = "/convenios/{convenio}/participantes/{participant}"


def routes() -> list[Route]:
    get, post = ["GET"], ["POST"]
    return [
        Route("/", dashboard.home, methods=get),
        Route("/login", login.login_form, methods=get),
        Route("/login", login.login, methods=post),
        Route("/sair", login.logout, methods=post),
        Route("/senha", login.password_form, methods=get),
        Route("/senha", login.change_password, methods=post),
        Route("/convenios", convenios.listing, methods=get),
        Route("/convenios", convenios.create, methods=post),
        Route("/convenios/novo", convenios.new_form, methods=get),
        Route("/convenios/{convenio}", convenios.show, methods=get),
        Route("/convenios/{convenio}", convenios.update, methods=post),
        Route("/convenios/{convenio}/editar", convenios.edit_form, methods=get),
        Route("/participantes", participants.search, methods=get),
        Route(P, participants.show, methods=get),
        Route(P + "/cancelar", participants.cancel_empenho, methods=post),
        Route(P + "/situacao", participants.set_status, methods=post),
        Route(P + "/senha", participants.reset_password, methods=post),
        Route("/duplicatas", duplicatas.listing, methods=get),
        Route("/duplicatas/{duplicata}", duplicatas.show, methods=get),
        Route("/duplicatas/{duplicata}/quitar", duplicatas.settle, methods=post),
        Route("/conciliacao", reconciliation.records, methods=get),
        Route("/conciliacao/arquivos", reconciliation.upload, methods=post),
        Route("/conciliacao/executar", reconciliation.run, methods=post),
        Route("/conciliacao/{record:int}", reconciliation.history, methods=get),
        Route("/conciliacao/{record:int}/desfazer", reconciliation.undo, methods=post),
        Route("/fechamento", reconciliation.closing, methods=get),
        Route("/solicitacoes", limits.worklist, methods=get),
        Route("/solicitacoes/{request}/aprovar", limits.approve, methods=post),
        Route("/solicitacoes/{request}/recusar", limits.reject, methods=post),
        Route("/logs", logs.listing, methods=get),
    ]
